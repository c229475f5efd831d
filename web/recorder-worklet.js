// AudioWorklet processor for flacstream's recorder.
//
// Takes the first input's first channel (the node is created with
// channelCount 1, "explicit", so the browser downmixes the microphone to mono),
// converts each Float32 sample to 16-bit signed integer PCM (clamped to
// [-1, 1], scaled, rounded) and posts it to the page in little-endian chunks
// of `chunkFrames` samples (~100 ms), with the chunk's peak level.
//
// Messages posted: {pcm: ArrayBuffer (s16le), frames, peak (0..1)}.
// Messages taken: "flush": post what is buffered (even a partial chunk),
// then {flushed: true}.

class RecorderProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const asked = options && options.processorOptions && options.processorOptions.chunkFrames;
    this.chunkFrames = Math.max(128, Math.floor(asked || sampleRate / 10));
    this.start();
    this.port.onmessage = (event) => {
      if (event.data === 'flush') {
        this.post();
        this.port.postMessage({ flushed: true });
      }
    };
  }

  start() {
    this.buffer = new ArrayBuffer(this.chunkFrames * 2);
    this.view = new DataView(this.buffer);
    this.frames = 0;
    this.peak = 0;
  }

  post() {
    if (this.frames === 0) return;
    const pcm = this.frames === this.chunkFrames ? this.buffer : this.buffer.slice(0, this.frames * 2);
    this.port.postMessage({ pcm, frames: this.frames, peak: this.peak }, [pcm]);
    this.start();
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) {
      const channel = input[0];
      for (let i = 0; i < channel.length; i++) {
        let s = channel[i];
        if (!(s >= -1)) s = s > 0 ? 1 : (s < 0 ? -1 : 0); // NaN → 0, -Inf → -1
        else if (s > 1) s = 1;
        const magnitude = s < 0 ? -s : s;
        if (magnitude > this.peak) this.peak = magnitude;
        const value = Math.round(s < 0 ? s * 32768 : s * 32767);
        this.view.setInt16(this.frames * 2, value, true);
        this.frames += 1;
        if (this.frames === this.chunkFrames) this.post();
      }
    }
    return true;
  }
}

registerProcessor('flacstream-recorder', RecorderProcessor);

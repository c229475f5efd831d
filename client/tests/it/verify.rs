//! The verifier itself: a FLAC made by the real client and server checks out
//! against its own input and fails, naming the first difference, against
//! another.

use crate::common::{fixture, run_client, server_url, temp_dir};
use flacstream_client::verify::{verify, VerifyError};
use flacstream_codec::fixture::{pcm_bytes, wav_bytes, WavSpec};

#[test]
fn verify_finds_the_first_differing_sample_and_length_changes() {
    let url = server_url();
    let dir = temp_dir("verify");
    let f = fixture(&dir, "a.wav", WavSpec::pcm(2, 8_000, 16), 3_000, 11);
    let out = dir.join("out");
    let run = run_client(&[
        f.path.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--url".as_ref(),
        url.as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let flac = out.join("a.flac");
    let wav = std::fs::read(&f.path).unwrap();
    assert_eq!(verify(&flac, &wav).unwrap().samples, 3_000);

    let mut samples = f.samples.clone();
    samples[2 * 1234 + 1] ^= 1;
    let changed = wav_bytes(&f.spec, &pcm_bytes(&samples, 16));
    match verify(&flac, &changed) {
        Err(VerifyError::Sample { frame, channel, .. }) => assert_eq!((frame, channel), (1234, 1)),
        other => panic!("{other:?}"),
    }

    let longer = wav_bytes(
        &f.spec,
        &pcm_bytes(&[f.samples.clone(), vec![0; 20]].concat(), 16),
    );
    match verify(&flac, &longer) {
        Err(VerifyError::Length { input, output }) => assert_eq!((input, output), (3_010, 3_000)),
        other => panic!("{other:?}"),
    }
    let shorter = wav_bytes(&f.spec, &pcm_bytes(&f.samples[..2 * 2_999], 16));
    assert!(matches!(
        verify(&flac, &shorter),
        Err(VerifyError::Length {
            input: 2_999,
            output: 3_000
        })
    ));

    let mono = wav_bytes(&WavSpec::pcm(1, 8_000, 16), &pcm_bytes(&f.samples, 16));
    assert!(matches!(
        verify(&flac, &mono),
        Err(VerifyError::Format {
            field: "channel count",
            ..
        })
    ));
}

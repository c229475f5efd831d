//! G.711 (ITU-T) A-law and μ-law bytes expanded to 16-bit linear PCM, one
//! byte per sample, so any split of the input is a split of samples.
//!
//! Written here rather than taken from symphonia, whose expansion is
//! private to its PCM decoder (which also wants packets sized in advance):
//! two formulas from the standard, checked code by code, all 256 of each,
//! against ffmpeg's tables (`codec/tests/media.rs`).
//!
//! A-law's expansion is one-to-one: compressing the 16-bit value again
//! gives the same byte. μ-law's is too except for its two zeros: 0x7F and
//! 0xFF (−0 and +0) both expand to 0, so a FLAC of μ-law audio holds every
//! sample exactly but cannot tell which zero the source sent.

/// Which G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// A-law (Europe, most of the world's telephony).
    Alaw,
    /// μ-law (North America, Japan; Twilio's media streams).
    Mulaw,
}

impl Law {
    /// The linear value of one code.
    pub const fn expand_one(self, code: u8) -> i16 {
        match self {
            Self::Alaw => alaw(code),
            Self::Mulaw => mulaw(code),
        }
    }

    /// Appends `codes` expanded to little-endian 16-bit samples.
    pub fn expand(self, codes: &[u8], out: &mut Vec<u8>) {
        let table = match self {
            Self::Alaw => &ALAW,
            Self::Mulaw => &MULAW,
        };
        out.reserve(codes.len() * 2);
        for &c in codes {
            out.extend_from_slice(&table[usize::from(c)].to_le_bytes());
        }
    }
}

const fn table(law: Law) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            Law::Alaw => alaw(i as u8),
            Law::Mulaw => mulaw(i as u8),
        };
        i += 1;
    }
    t
}

static ALAW: [i16; 256] = table(Law::Alaw);
static MULAW: [i16; 256] = table(Law::Mulaw);

/// A-law: even bits inverted on the line; 3 bits of segment, 4 of step;
/// the sign bit set means positive.
const fn alaw(code: u8) -> i16 {
    let c = code ^ 0x55;
    let step = ((c & 0x0F) as i16) << 4;
    let segment = (c >> 4) & 0x07;
    let magnitude = match segment {
        0 => step + 8,
        1 => step + 0x108,
        s => (step + 0x108) << (s - 1),
    };
    if c & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// μ-law: all bits inverted on the line; biased by 0x84 before the
/// segment shift; the sign bit set means negative.
const fn mulaw(code: u8) -> i16 {
    const BIAS: i16 = 0x84;
    let c = !code;
    let segment = (c >> 4) & 0x07;
    let magnitude = ((((c & 0x0F) as i16) << 3) + BIAS) << segment;
    if c & 0x80 != 0 {
        BIAS - magnitude
    } else {
        magnitude - BIAS
    }
}

#[cfg(test)]
mod tests {
    use super::Law;

    #[test]
    fn known_codes() {
        // Silence, and the extremes of each law.
        assert_eq!(Law::Alaw.expand_one(0xD5), 8);
        assert_eq!(Law::Alaw.expand_one(0x55), -8);
        assert_eq!(Law::Alaw.expand_one(0xAA), 32_256);
        assert_eq!(Law::Alaw.expand_one(0x2A), -32_256);
        assert_eq!(Law::Mulaw.expand_one(0xFF), 0);
        assert_eq!(Law::Mulaw.expand_one(0x7F), 0);
        assert_eq!(Law::Mulaw.expand_one(0x80), 32_124);
        assert_eq!(Law::Mulaw.expand_one(0x00), -32_124);
    }

    #[test]
    fn a_law_is_one_to_one_and_mu_law_has_one_pair() {
        let distinct = |law: Law| {
            let mut v: Vec<i16> = (0..=255u8).map(|c| law.expand_one(c)).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        assert_eq!(distinct(Law::Alaw), 256);
        assert_eq!(distinct(Law::Mulaw), 255);
    }

    #[test]
    fn expand_writes_little_endian_pairs() {
        let mut out = Vec::new();
        Law::Mulaw.expand(&[0x80, 0xFF], &mut out);
        assert_eq!(out, [0x7C, 0x7D, 0, 0]);
    }
}

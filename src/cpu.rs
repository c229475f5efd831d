//! The CPU check at start-up: a binary built for x86-64-v3 (the default, see
//! `.cargo/config.toml`) refuses to start on a CPU that lacks those features,
//! with a message saying how to build one that runs, instead of dying later
//! on an illegal instruction in the middle of a stream.

/// Features the x86-64-v3 level adds that the encoder's hot loops use once
/// the compiler is allowed to: if the binary was compiled with AVX2, every
/// one of these must be present at run time.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn missing_features() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !std::arch::is_x86_feature_detected!("avx2") {
        missing.push("avx2");
    }
    if !std::arch::is_x86_feature_detected!("fma") {
        missing.push("fma");
    }
    if !std::arch::is_x86_feature_detected!("bmi2") {
        missing.push("bmi2");
    }
    missing
}

/// A binary built without x86-64-v3 runs anywhere its target does.
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
fn missing_features() -> Vec<&'static str> {
    Vec::new()
}

/// `Err` with a message for the operator if this CPU cannot run this binary.
pub fn check() -> Result<(), String> {
    let missing = missing_features();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "this flacstream binary was built for x86-64-v3 but the CPU lacks {}; \
         build a baseline binary with RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    /// The machine that builds and tests this binary can run it.
    #[test]
    fn the_build_machine_passes_its_own_check() {
        assert_eq!(super::check(), Ok(()));
    }
}

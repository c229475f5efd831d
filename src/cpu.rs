//! The CPU check at start-up: a binary built for x86-64-v3 (the default, see
//! `.cargo/config.toml`) refuses to start on a CPU that lacks those features,
//! with a message saying how to build one that runs, instead of dying on an
//! illegal instruction.
//!
//! The check reads CPUID itself. `is_x86_feature_detected!` cannot be used:
//! it answers from the compile-time target features first, so in a v3 build
//! it is constant `true` and the check would vanish.

/// Leaf 1, ECX: FMA.
const CPUID1_ECX_FMA: u32 = 1 << 12;
/// Leaf 1, ECX: the OS has enabled XSAVE (XGETBV is usable).
const CPUID1_ECX_OSXSAVE: u32 = 1 << 27;
/// Leaf 1, ECX: AVX.
const CPUID1_ECX_AVX: u32 = 1 << 28;
/// Leaf 7, EBX: AVX2.
const CPUID7_EBX_AVX2: u32 = 1 << 5;
/// Leaf 7, EBX: BMI2.
const CPUID7_EBX_BMI2: u32 = 1 << 8;
/// XCR0: the OS saves SSE and AVX register state (bits 1 and 2).
const XCR0_SSE_AVX: u64 = 0b110;

/// Features of x86-64-v3 that this CPU lacks, read from CPUID.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[allow(
    unsafe_code,
    reason = "XGETBV is the one way to ask whether the OS saves AVX state; the only unsafe in the workspace"
)]
fn missing_features() -> Vec<&'static str> {
    use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    // Leaf 7 is only read when leaf 0 says it exists.
    let leaf1 = __cpuid(1);
    let leaf7_ebx = if __cpuid(0).eax >= 7 {
        __cpuid_count(7, 0).ebx
    } else {
        0
    };
    let os_avx = leaf1.ecx & CPUID1_ECX_OSXSAVE != 0
        // SAFETY: XGETBV is available: OSXSAVE is set.
        && unsafe { _xgetbv(0) } & XCR0_SSE_AVX == XCR0_SSE_AVX;
    let mut missing = Vec::new();
    if leaf1.ecx & CPUID1_ECX_AVX == 0 || !os_avx {
        missing.push("avx");
    }
    if leaf7_ebx & CPUID7_EBX_AVX2 == 0 {
        missing.push("avx2");
    }
    if leaf1.ecx & CPUID1_ECX_FMA == 0 {
        missing.push("fma");
    }
    if leaf7_ebx & CPUID7_EBX_BMI2 == 0 {
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
#[inline(never)]
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
    /// The machine that builds and tests this binary can run it (a v3 test
    /// binary would not have got this far otherwise), and the check reads
    /// the CPU: the feature names it could report are the ones it tests.
    #[test]
    fn the_build_machine_passes_its_own_check() {
        assert_eq!(super::check(), Ok(()));
        assert!(super::missing_features().is_empty());
    }
}

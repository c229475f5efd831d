//! `-` for stdin (an input) or stdout (the output), the command line's
//! convention.

use std::path::Path;

/// The name standing for stdin (input) or stdout (output).
pub const STDIO: &str = "-";

/// Whether `path` is `-` (stdin or stdout).
pub fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == STDIO
}

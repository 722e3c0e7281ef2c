//! Tests that read the assets `cargo xtask setup` fetches (models, benchmarks, refusal lists):
//! [`asset`] finds one, and when it is missing either says the test is skipped or, where the
//! assets must be there (`cargo xtask test` and CI set `FEDPREF_REQUIRE_ASSETS=1` after fetching
//! them), fails the test with the fix.

use std::path::{Path, PathBuf};

/// The variable that turns a missing asset from a skip into a failure.
pub const REQUIRE_ASSETS: &str = "FEDPREF_REQUIRE_ASSETS";

/// The workspace's `assets/` folder.
pub fn assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets")
}

/// `assets/<relative>` when it exists. When it does not, prints that `test` is skipped and
/// returns `None`, unless `FEDPREF_REQUIRE_ASSETS` is set, in which case it panics.
///
/// # Panics
/// When the asset is missing and `FEDPREF_REQUIRE_ASSETS` is set.
pub fn asset(relative: &str, test: &str) -> Option<PathBuf> {
    let path = assets_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    let message =
        format!("{test}: assets/{relative} is missing; run `cargo xtask setup` to fetch it");
    if std::env::var_os(REQUIRE_ASSETS).is_some() {
        panic!("{message} (required: {REQUIRE_ASSETS} is set)");
    }
    eprintln!("skipped: {message}");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_asset_is_a_skip_or_a_failure() {
        let missing = "no/such/asset.bin";
        if std::env::var_os(REQUIRE_ASSETS).is_some() {
            let panicked = std::panic::catch_unwind(|| asset(missing, "probe"));
            let message = panicked
                .expect_err("required assets fail")
                .downcast::<String>()
                .expect("a formatted message");
            assert!(message.contains("cargo xtask setup"), "{message}");
        } else {
            assert_eq!(asset(missing, "probe"), None);
        }
    }
}

//! The `simpo` loss plugin: SimPO, a reference-free preference loss.
//!
//! One component, `simpo` ([`Simpo`], formula in [`simpo`](crate::simpo)), over (chosen,
//! rejected) pairs without a reference model: the reward is the policy's per-token average
//! log-prob, with a target margin γ. It shows the loss ABI carries a method of another family
//! than DPO and KTO: its [`SIMPO_SPEC`] asks for no reference log-probs at all.
//!
//! The host loads the `cdylib` through [`fedpref_root_module`]; the math is plain Rust in
//! [`simpo`] with `fedpref_plugin_api::math`, tested in-process through the `rlib`.
//!
//! ```
//! let plugin = fedpref_loss_simpo::plugin();
//! let loss = plugin.new_loss("simpo", r#"{"beta": 2.5, "gamma_beta_ratio": 0.55}"#).unwrap();
//! assert!(!loss.spec().needs_reference);
//! ```

pub mod simpo;
#[cfg(test)]
mod tests;

use fedpref_plugin_api::Plugin;
pub use simpo::{Simpo, SIMPO_SPEC};

/// The components this library provides.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).loss(
        "simpo",
        "SimPO (Meng et al. 2024): reference-free, length-normalized rewards with a target margin",
        SIMPO_SPEC,
        Simpo::from_params,
    )
}

fedpref_plugin_api::export_plugin!(plugin);

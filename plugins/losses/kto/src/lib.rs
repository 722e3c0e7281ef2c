//! The `kto` loss plugin: Kahneman-Tversky Optimization on single labelled answers.
//!
//! Two components share one loss ([`Kto`], formula in [`kto`](crate::kto)), as TRL's
//! `KTOTrainer.kto_loss` computes it:
//! - `kto` ([`KTO_SPEC`]): unpaired data, each client's pairs split into single answers;
//! - `ktor` ([`KTOR_SPEC`]): the same loss after the `redistribute` partition has dealt the
//!   single answers of every pair out across clients.
//!
//! The host loads the `cdylib` through [`fedpref_root_module`]; the math is plain Rust in
//! [`kto`] with `fedpref_plugin_api::math`, tested in-process through the `rlib`.
//!
//! ```
//! let plugin = fedpref_loss_kto::plugin();
//! let loss = plugin.new_loss("ktor", r#"{"desirable_weight": "auto"}"#).unwrap();
//! assert!(loss.spec().needs_kl_batch);
//! ```

pub mod kto;
#[cfg(test)]
mod tests;

use fedpref_plugin_api::Plugin;
pub use kto::{DesirableWeight, Kto, KTOR_SPEC, KTO_SPEC};

/// The components this library provides.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .loss(
            "kto",
            "Kahneman-Tversky Optimization (Ethayarajh et al. 2024) on each client's single answers",
            KTO_SPEC,
            |params| Kto::from_params(params, KTO_SPEC),
        )
        .loss(
            "ktor",
            "KTO on redistributed data: pairs broken across clients by the redistribute partition",
            KTOR_SPEC,
            |params| Kto::from_params(params, KTOR_SPEC),
        )
}

fedpref_plugin_api::export_plugin!(plugin);

//! The `dpo` loss plugin: Direct Preference Optimization and its TRL variants.
//!
//! One component, `dpo` ([`Dpo`]), over (chosen, rejected) pairs with reference log-probs:
//! `variant` = `sigmoid` (Rafailov et al. 2023), `cdpo`, `robust`, `hinge` or `ipo`, with the
//! formulas of TRL's `DPOTrainer.dpo_loss` (see [`dpo`](crate::dpo) for the table). The host
//! loads the `cdylib` through [`fedpref_root_module`]; the math is plain Rust in [`dpo`] with
//! `fedpref_plugin_api::math`, tested in-process through the `rlib`.
//!
//! ```
//! let plugin = fedpref_loss_dpo::plugin();
//! let loss = plugin.new_loss("dpo", r#"{"variant": "ipo", "beta": 0.5}"#).unwrap();
//! assert!(loss.spec().needs_reference);
//! ```

pub mod dpo;
#[cfg(test)]
mod tests;

pub use dpo::{Dpo, DpoVariant, DPO_SPEC};
use fedpref_plugin_api::Plugin;

/// The components this library provides.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).loss(
        "dpo",
        "Direct Preference Optimization (Rafailov et al. 2023) with TRL's cdpo, robust, hinge and ipo variants",
        DPO_SPEC,
        Dpo::from_params,
    )
}

fedpref_plugin_api::export_plugin!(plugin);

//! The standard partitions of fedpref, as one plugin.
//!
//! | name | what a client gets |
//! | --- | --- |
//! | `iid` | equal shuffled shards of whole examples |
//! | `dirichlet` | category skew, `Dir(alpha)` proportions per category, `min_size` per client |
//! | `natural` | one client per user/client id (`group`), optional `max_clients`, `merge_below` |
//! | `redistribute` | KTOR: pairs split into single answers, dealt out at random; each client keeps its size (`sizes`) |
//! | `quantity-skew` | power-law sizes (`exponent`), whole examples dealt at random |
//!
//! Every rule is a pure function of the example metadata, the client count, the seed (ChaCha8)
//! and its parameters, and places every example (or, for `redistribute`, every single answer)
//! on exactly one client. The rules live in plain modules; this file only registers them.

mod common;
mod dirichlet;
mod gamma;
mod iid;
mod natural;
mod quantity_skew;
mod redistribute;
#[cfg(test)]
mod tests;

use fedpref_plugin_api::Plugin;

pub use dirichlet::Dirichlet;
pub use iid::Iid;
pub use natural::Natural;
pub use quantity_skew::QuantitySkew;
pub use redistribute::{pairs_on_same_client, Redistribute, Sizes};

/// This plugin's components.
pub fn plugin() -> Plugin {
    Plugin::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
        .partitioner("iid", "equal shuffled shards of whole examples", Iid::from_params)
        .partitioner(
            "dirichlet",
            "category skew with Dirichlet(alpha) proportions (Hsu et al. 2019); params alpha, min_size, max_attempts",
            Dirichlet::from_params,
        )
        .partitioner(
            "natural",
            "one client per user or client id; params max_clients, merge_below",
            Natural::from_params,
        )
        .partitioner(
            "redistribute",
            "KTOR (arXiv 2502.14187): pairs split into single answers dealt out at random, each client keeping its size; param sizes (keep, equal)",
            Redistribute::from_params,
        )
        .partitioner(
            "quantity-skew",
            "power-law client sizes (param exponent), whole examples dealt at random",
            QuantitySkew::from_params,
        )
}

fedpref_plugin_api::export_plugin!(plugin);

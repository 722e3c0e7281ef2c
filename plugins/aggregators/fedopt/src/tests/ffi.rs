//! The exported entry points: components built by name through [`plugin`] and the root module,
//! aggregating through the FFI object.

use abi_stable::std_types::{RSlice, RStr};
use fedpref_plugin_api::{
    testing::{aggregation::Round, error_of},
    ComponentKind, ErrorKind,
};

use super::{assert_close, rounds};
use crate::{fedpref_root_module, plugin};

#[test]
fn the_manifest_lists_every_aggregator() {
    let names: Vec<String> = plugin()
        .manifest()
        .components
        .iter()
        .inspect(|c| assert_eq!(c.kind, ComponentKind::Aggregator))
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "fedavg",
            "fedprox",
            "scaffold",
            "fedavgm",
            "fedadagrad",
            "fedyogi",
            "fedadam"
        ]
    );
}

#[test]
fn fedadam_through_the_ffi_object() {
    let params = r#"{"server_lr": 0.1, "tau": 0.1, "beta1": 0.5, "beta2": 0.9}"#;
    let mut object = plugin().new_aggregator("fedadam", params).unwrap();
    // Two rounds, a checkpoint, then the third round in a fresh object (see adaptive.rs).
    let want = [
        [0.5377480178915048, -1.0503081260489109, 1.9557518477901035],
        [0.6736171659895781, -1.1013377927925745, 1.8374321153671764],
        [0.8352097997289464, -0.9384185915832506, 1.6693987732690232],
    ];
    for (round, want) in rounds().iter().zip(&want).take(2) {
        let out = round.with_input(|input| object.aggregate(input).into_result().unwrap());
        assert_close(&out.global, want, "fedadam through ffi");
    }
    let state = object.save_state().into_result().unwrap();
    let mut restored = plugin().new_aggregator("fedadam", params).unwrap();
    restored
        .load_state(state.as_slice().into())
        .into_result()
        .unwrap();
    rounds()[2].with_input(|input| {
        let out = restored.aggregate(input).into_result().unwrap();
        assert_close(&out.global, &want[2], "fedadam restored through ffi");
        assert_eq!(out, object.aggregate(input).into_result().unwrap());
    });
}

#[test]
fn errors_cross_the_ffi_boundary() {
    let mut object = plugin().new_aggregator("fedavg", "").unwrap();
    let empty = Round {
        round: 0,
        n_clients: 4,
        global: vec![0.0; 3],
        clients: Vec::new(),
    };
    // An empty round is refused.
    let result = empty.with_input(|input| object.aggregate(input));
    assert_eq!(error_of(result).kind, ErrorKind::InvalidInput);
    // There is no fedsgd.
    assert_eq!(
        error_of(plugin().new_aggregator("fedsgd", "")).kind,
        ErrorKind::UnknownComponent
    );
}

#[test]
fn the_root_module_builds_scaffold_and_plans_its_correction() {
    let module = fedpref_root_module();
    let manifest = module.manifest()().into_result().unwrap();
    assert_eq!(
        manifest.api_version.as_str(),
        fedpref_plugin_api::API_VERSION
    );
    assert_eq!(manifest.components.len(), 7);

    let mut object = module.new_aggregator()(RStr::from("scaffold"), RStr::from(""))
        .into_result()
        .unwrap();
    rounds()[0].with_input(|input| object.aggregate(input).into_result().unwrap());
    // c − c_0 before round 1 (see scaffold.rs).
    let plan = object
        .client_plan(0, RSlice::from_slice(&rounds()[1].global))
        .into_result()
        .unwrap();
    assert_close(
        &plan.weight_offset,
        &[0.84375, 1.03125, -0.1875],
        "offset through the root module",
    );
    assert!(plan.gradient_offset.is_empty());

    // beta1 = 2 is refused.
    let bad = module.new_aggregator()(RStr::from("fedadam"), RStr::from(r#"{"beta1": 2}"#));
    assert_eq!(error_of(bad).kind, ErrorKind::InvalidParams);
}

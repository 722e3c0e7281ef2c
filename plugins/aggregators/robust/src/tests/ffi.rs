//! The exported entry points: components built by name through [`plugin`] and the root module.

use abi_stable::std_types::RStr;
use fedpref_plugin_api::{testing::error_of, ErrorKind};

use super::{with_outlier, HONEST};
use crate::{fedpref_root_module, plugin};

#[test]
fn the_manifest_lists_every_rule() {
    let names: Vec<String> = plugin()
        .manifest()
        .components
        .iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(names, ["median", "trimmed-mean", "krum", "multi-krum"]);
}

#[test]
fn krum_through_the_ffi_object() {
    let mut object = plugin()
        .new_aggregator("krum", r#"{"byzantine": 1}"#)
        .unwrap();
    let mut round = with_outlier();
    round.round = 3;
    let out = round.with_input(|input| object.aggregate(input).into_result().unwrap());
    assert_eq!(out.global.as_slice(), &HONEST[0]);
    let state = object.save_state().into_result().unwrap();
    object
        .load_state(state.as_slice().into())
        .into_result()
        .unwrap();
}

#[test]
fn the_root_module_builds_every_rule() {
    let module = fedpref_root_module();
    let manifest = module.manifest()().into_result().unwrap();
    assert_eq!(
        manifest.api_version.as_str(),
        fedpref_plugin_api::API_VERSION
    );
    let mut median = module.new_aggregator()(RStr::from("median"), RStr::from(""))
        .into_result()
        .unwrap();
    let out = with_outlier().with_input(|input| median.aggregate(input).into_result().unwrap());
    assert_eq!(out.global.as_slice(), &[2.0, -2.0, 0.75, 2.5]);
    // trim = 0.9 is refused.
    let bad = module.new_aggregator()(RStr::from("trimmed-mean"), RStr::from(r#"{"trim": 0.9}"#));
    assert_eq!(error_of(bad).kind, ErrorKind::InvalidParams);
    // There is no bulyan.
    let bulyan = module.new_aggregator()(RStr::from("bulyan"), RStr::from(""));
    assert_eq!(error_of(bulyan).kind, ErrorKind::UnknownComponent);
}

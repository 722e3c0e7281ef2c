//! State round trips (save, load into a fresh instance, identical next round bit for bit) and
//! the refusal of bytes that are not this component's state.

use fedpref_plugin_api::{state::StateWriter, ErrorKind};

use super::{assert_error, make, rounds, ALL};

#[test]
fn state_round_trips_bit_exactly_for_every_component() {
    for (name, params) in ALL {
        let rounds = rounds();
        let mut original = make(name, params);
        rounds[0].run(original.as_mut()).unwrap();
        rounds[1].run(original.as_mut()).unwrap();
        let saved = original.save_state().unwrap();

        let mut restored = make(name, params);
        restored.load_state(&saved).unwrap();
        assert_eq!(
            restored.save_state().unwrap(),
            saved,
            "{name} {params}: save after load"
        );
        for c in &rounds[2].clients {
            assert_eq!(
                original.client_plan(c.client, &rounds[2].global).unwrap(),
                restored.client_plan(c.client, &rounds[2].global).unwrap(),
                "{name} {params}: plan of client {}",
                c.client
            );
        }
        let a = rounds[2].run(original.as_mut()).unwrap();
        let b = rounds[2].run(restored.as_mut()).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.global),
            bits(&b.global),
            "{name} {params}: next round"
        );
        assert_eq!(a.metrics, b.metrics, "{name} {params}: metrics");
        assert_eq!(
            original.save_state().unwrap(),
            restored.save_state().unwrap(),
            "{name} {params}: state"
        );
    }
}

#[test]
fn a_fresh_state_round_trips() {
    for (name, params) in ALL {
        let fresh = make(name, params);
        let mut other = make(name, params);
        other.load_state(&fresh.save_state().unwrap()).unwrap();
        let a = rounds()[0].run(make(name, params).as_mut()).unwrap();
        let b = rounds()[0].run(other.as_mut()).unwrap();
        assert_eq!(a, b, "{name} {params}");
    }
}

#[test]
fn loading_replaces_the_state() {
    // A restored instance that had run rounds of its own must forget them.
    let mut source = make("fedadam", "");
    rounds()[0].run(source.as_mut()).unwrap();
    let saved = source.save_state().unwrap();
    let mut busy = make("fedadam", "");
    for round in rounds() {
        round.run(busy.as_mut()).unwrap();
    }
    busy.load_state(&saved).unwrap();
    assert_eq!(busy.save_state().unwrap(), saved);
}

#[test]
fn foreign_bytes_are_refused() {
    let mut fedadam = make("fedadam", "");
    assert_error(
        fedadam.load_state(b""),
        ErrorKind::InvalidInput,
        &["not a fedpref aggregator state"],
    );
    assert_error(
        fedadam.load_state(br#"{"m": [1.0]}"#),
        ErrorKind::InvalidInput,
        &["fedadam", "not a fedpref aggregator state", "7b"],
    );
    let yogi_state = make("fedyogi", "").save_state().unwrap();
    assert_error(
        fedadam.load_state(&yogi_state),
        ErrorKind::InvalidInput,
        &["\"fedyogi\"", "not \"fedadam\""],
    );
}

#[test]
fn a_newer_format_version_is_refused() {
    let mut bytes = make("fedavgm", "").save_state().unwrap();
    bytes[8] = 2;
    assert_error(
        make("fedavgm", "").load_state(&bytes),
        ErrorKind::InvalidInput,
        &["version 2", "version 1"],
    );
}

#[test]
fn truncated_and_padded_states_are_refused() {
    let mut scaffold = make("scaffold", "");
    rounds()[0].run(scaffold.as_mut()).unwrap();
    let bytes = scaffold.save_state().unwrap();
    for cut in [bytes.len() - 1, bytes.len() - 4, 14, 13] {
        assert_error(
            make("scaffold", "").load_state(&bytes[..cut]),
            ErrorKind::InvalidInput,
            &["truncated"],
        );
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert_error(
        make("scaffold", "").load_state(&padded),
        ErrorKind::InvalidInput,
        &["1 unexpected trailing"],
    );
}

#[test]
fn a_huge_vector_length_fails_before_allocating() {
    let mut w = StateWriter::new("fedavgm");
    w.u64(3);
    w.u64(u64::MAX / 2);
    let bytes = w.finish();
    assert_error(
        make("fedavgm", "").load_state(&bytes),
        ErrorKind::InvalidInput,
        &["truncated", "momentum"],
    );
}

#[test]
fn scaffold_state_rejects_inconsistent_client_entries() {
    let with_client = |n_clients: u64, client: u64, len: usize| {
        let mut w = StateWriter::new("scaffold");
        w.u64(n_clients);
        w.f32s(&[0.5; 3]);
        w.u64(1);
        w.u64(client);
        w.f32s(&vec![0.25; len]);
        w.finish()
    };
    make("scaffold", "")
        .load_state(&with_client(4, 3, 3))
        .unwrap();
    assert_error(
        make("scaffold", "").load_state(&with_client(4, 4, 3)),
        ErrorKind::InvalidInput,
        &["client 4", "out of range"],
    );
    assert_error(
        make("scaffold", "").load_state(&with_client(4, 1, 2)),
        ErrorKind::InvalidInput,
        &["client 1", "holds 2"],
    );
}

//! Random bytes never panic the loader: 2000 seeded byte strings, half made of JSON-like
//! fragments (to reach the layout parsers), half of damaged valid files.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::data::{load_bytes, DataConfig, Format, OnInvalid};

const FRAGMENTS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\n",
    b" ",
    b"\"",
    b"\\",
    b"\"prompt\"",
    b"\"chosen\"",
    b"\"rejected\"",
    b"\"completion\"",
    b"\"label\"",
    b"\"messages\"",
    b"\"conversations\"",
    b"\"role\"",
    b"\"content\"",
    b"\"from\"",
    b"\"value\"",
    b"\"user\"",
    b"\"gpt\"",
    b"\"human\"",
    b"\"assistant\"",
    b"\"system\"",
    b"\"user_id\"",
    b"true",
    b"false",
    b"null",
    b"1",
    b"-2.5e3",
    b"\"x\"",
    b"\"\"",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xef\xbb\xbf",
    b"\r",
];

const FORMATS: [Format; 5] = [
    Format::Auto,
    Format::TrlPaired,
    Format::TrlUnpaired,
    Format::SharegptPaired,
    Format::SharegptKto,
];

fn valid_files() -> Vec<Vec<u8>> {
    vec![
        json!([{"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"},
                "rejected": {"from": "gpt", "value": "b"}, "system": "s", "user_id": 1}])
        .to_string()
        .into_bytes(),
        format!(
            "{}\n{}\n",
            json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": true}),
            json!({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
                   "rejected": [{"role": "assistant", "content": "b"}]})
        )
        .into_bytes(),
    ]
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let valid = valid_files();
    let path = std::path::Path::new("random.json");
    let mut outcomes = [0usize; 2];
    for i in 0..2000 {
        let bytes: Vec<u8> = match i % 4 {
            0 => (0..rng.random_range(0..200))
                .map(|_| rng.random())
                .collect(),
            1 => (0..rng.random_range(0..60))
                .flat_map(|_| {
                    FRAGMENTS[rng.random_range(0..FRAGMENTS.len())]
                        .iter()
                        .copied()
                })
                .collect(),
            _ => {
                let mut bytes = valid[rng.random_range(0..valid.len())].clone();
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..bytes.len());
                    match rng.random_range(0..3) {
                        0 => bytes[at] = rng.random(),
                        1 => bytes.truncate(at),
                        _ => bytes
                            .splice(
                                at..at,
                                FRAGMENTS[rng.random_range(0..FRAGMENTS.len())]
                                    .iter()
                                    .copied(),
                            )
                            .for_each(drop),
                    }
                    if bytes.is_empty() {
                        break;
                    }
                }
                bytes
            }
        };
        for on_invalid in [OnInvalid::Error, OnInvalid::Skip] {
            let config = DataConfig {
                format: FORMATS[i % FORMATS.len()],
                on_invalid,
                ..DataConfig::default()
            };
            let ok = load_bytes(path, &bytes, &config).is_ok();
            outcomes[usize::from(ok)] += 1;
        }
    }
    // Both outcomes occur, so the damage exercised the parsers rather than one early exit.
    assert!(
        outcomes[0] > 100 && outcomes[1] > 100,
        "errors, successes: {outcomes:?}"
    );
}

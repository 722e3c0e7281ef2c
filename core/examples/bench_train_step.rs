//! `cargo run --release -p fedpref --example bench_train_step [-- --gguf PATH --steps N --batch B --seq S]`:
//! one JSON line, comparable with `shared/bench/pytorch/train_step.py --config lora`.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    fedpref::model::init_cpu();
    let mut b = fedpref::model::bench::TrainStepBench::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--gguf" => b.gguf = Some(PathBuf::from(value()?)),
            "--steps" => b.steps = value()?.parse()?,
            "--warmup" => b.warmup = value()?.parse()?,
            "--batch" => b.batch = value()?.parse()?,
            "--seq" => b.seq = value()?.parse()?,
            "--rank" => b.rank = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let report = fedpref::model::bench::train_step(&b)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

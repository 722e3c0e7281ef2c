//! The round's phases on a tiny random model with small linked-in plugins
//! ([`crate::plugin_host::test_plugins`]): each phase does what its name says, and the phases
//! run one by one equal a whole run.

use std::sync::{atomic::AtomicBool, Arc};

use super::{
    experiment::Experiment,
    plan::{plan_sweep, RunPlan},
    round::{self, RunLogs},
    state::FederationState,
    SweepContext,
};
use crate::{config::ExperimentConfig, progress::Progress, PluginHost};

/// A scratch experiment: a tiny model, 24 pairs, the test plugins.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub host: PluginHost,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        fedpref_model::testing::write_tiny_model(&dir.path().join("model"), 7).expect("model");
        let words = ["apple", "river", "stone", "cloud", "ember", "maple", "tide"];
        let rows: Vec<String> = (0..24)
            .map(|i| {
                let w = |k: usize| words[(i * 3 + k) % words.len()];
                serde_json::json!({
                    "prompt": format!("Name something like {} and {}.", w(0), w(1)),
                    "chosen": format!("A {} near the {}.", w(2), w(0)),
                    "rejected": format!("{} {} {}", w(1), w(1), w(3)),
                })
                .to_string()
            })
            .collect();
        std::fs::write(dir.path().join("pairs.jsonl"), rows.join("\n")).expect("data");
        let host = crate::plugin_host::test_plugins::host();
        Fixture { dir, host }
    }

    /// The experiment config for `method` and `aggregator`, with `extra` TOML keys set.
    pub fn config(&self, method: &str, aggregator: &str, extra: &[&str]) -> ExperimentConfig {
        let root = self.dir.path();
        let mut overrides: Vec<String> = vec![
            format!("experiment.methods=[{method:?}]"),
            format!("experiment.aggregators=[{aggregator:?}]"),
            "experiment.seeds=[3]".into(),
            format!("experiment.output_dir={:?}", root.join("runs")),
            format!("model.path={:?}", root.join("model")),
            format!("data.path={:?}", root.join("pairs.jsonl")),
            "data.max_length=96".into(),
            "data.max_prompt_length=48".into(),
            "federation.clients=3".into(),
            "federation.clients_per_round=2".into(),
            "federation.rounds=2".into(),
            "training.batch_size=2".into(),
            "training.local_steps=2".into(),
            "training.lr=1e-2".into(),
            "training.lr_min=1e-3".into(),
            "lora.rank=4".into(),
            "lora.alpha=8".into(),
            "partition.name=\"test-round-robin\"".into(),
        ];
        overrides.extend(extra.iter().map(|s| (*s).to_owned()));
        let path = root.join("empty.toml");
        std::fs::write(&path, "").expect("config file");
        crate::config::load(&path, &overrides).expect("config")
    }

    /// The one run of `config`.
    pub fn plan(&self, config: &ExperimentConfig) -> RunPlan {
        plan_sweep(config, &self.host)
            .expect("plan")
            .pop()
            .expect("one run")
    }

    pub fn ctx(&self) -> SweepContext<'_> {
        SweepContext {
            host: &self.host,
            stop: Arc::new(AtomicBool::new(false)),
            reference_cache: None,
            progress: Progress::lines(),
            isolation: None,
        }
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn preparing_deals_every_pair_to_a_client_and_attaches_a_fresh_adapter() {
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config("test-pairs", "test-mean", &[]));
    let mut ctx = fx.ctx();
    let experiment = Experiment::prepare(&plan, &mut ctx).expect("prepare");
    assert_eq!(experiment.n_clients(), 3);
    let units: usize = experiment.clients.iter().map(|c| c.units.len()).sum();
    assert_eq!(units, 24, "every pair is one unit of one client");
    assert!(experiment.clients.iter().all(|c| !c.has_reference));
    let adapter = experiment.model.decoder.adapter().expect("attached");
    assert_eq!(adapter.flatten().expect("flat"), experiment.initial);
    assert!(
        ctx.reference_cache.is_some(),
        "a loss with reference log-probs opens the cache"
    );
}

#[test]
fn redistributed_answers_keep_the_client_sizes_of_the_configured_split() {
    // 24 pairs dealt round robin to 5 clients hold 5, 5, 5, 5 and 4 pairs: 10, 10, 10, 10 and 8
    // answers, the sizes `redistribute` is told to keep.
    let fx = Fixture::new();
    let config = fx.config(
        "test-redistributed",
        "test-mean",
        &[
            "federation.clients=5",
            "partition.redistribute={sizes=\"keep\"}",
        ],
    );
    let plan = fx.plan(&config);
    assert_eq!(plan.partitioner, "redistribute");
    let base = plan
        .base_partitioner
        .as_ref()
        .map(|(name, _)| name.as_str());
    assert_eq!(base, Some("test-round-robin"));
    let experiment = Experiment::prepare(&plan, &mut fx.ctx()).expect("prepare");
    let sizes: Vec<usize> = experiment.clients.iter().map(|c| c.units.len()).collect();
    assert_eq!(sizes, [10, 10, 10, 10, 8]);
    assert_eq!(experiment.partition_summary.partitioner, "redistribute");
}

#[test]
fn selecting_clients_is_seeded_and_follows_the_cosine_schedule() {
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config("test-pairs", "test-mean", &[]));
    let experiment = Experiment::prepare(&plan, &mut fx.ctx()).expect("prepare");
    let first = round::select_clients(&experiment, 0);
    assert_eq!(first, round::select_clients(&experiment, 0));
    assert_eq!(first.sampled.len(), 2);
    assert!((first.lr - 1e-2).abs() < 1e-15);
    // Round 1 of 2: halfway down the cosine, (1e-2 + 1e-3) / 2.
    assert!((round::select_clients(&experiment, 1).lr - 5.5e-3).abs() < 1e-15);
}

#[test]
fn training_logs_steps_and_returns_finite_updates_without_touching_the_global() {
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config("test-singles", "test-mean", &[]));
    let mut ctx = fx.ctx();
    let mut experiment = Experiment::prepare(&plan, &mut ctx).expect("prepare");
    experiment.dir.create().expect("run directory");
    let mut state = FederationState::start(&experiment);
    let mut logs = RunLogs::open(&experiment, (0, 0)).expect("logs");
    let round = round::select_clients(&experiment, 0);
    let bar = indicatif::ProgressBar::hidden();
    let training = round::train_clients(
        &mut experiment,
        &mut state,
        &round,
        &mut ctx,
        &mut logs,
        &bar,
    )
    .expect("train");
    assert_eq!(
        training
            .trained
            .iter()
            .map(|t| t.client)
            .collect::<Vec<_>>(),
        round.sampled
    );
    assert!(training
        .trained
        .iter()
        .all(|t| t.local_steps == 2 && t.params.iter().all(|p| p.is_finite())));
    assert_ne!(bits(&training.trained[0].params), bits(&experiment.initial));
    assert_eq!(bits(&state.global), bits(&experiment.initial));
    assert!(training.means.means().contains_key("loss"));
    for client in &round.sampled {
        assert!(experiment.clients[*client as usize].has_reference);
    }
    logs.steps.sync().expect("sync");
    let steps = std::fs::read_to_string(experiment.dir.steps_file()).expect("steps");
    assert_eq!(steps.lines().count(), 4, "2 clients x 2 steps");
}

#[test]
fn aggregating_weights_each_update_by_its_clients_units() {
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config("test-pairs", "test-mean", &[]));
    let mut ctx = fx.ctx();
    let mut experiment = Experiment::prepare(&plan, &mut ctx).expect("prepare");
    let mut state = FederationState::start(&experiment);
    let n = experiment.n_params();
    let round = round::select_clients(&experiment, 0);
    let training = round::RoundTraining {
        trained: round
            .sampled
            .iter()
            .enumerate()
            .map(|(k, &client)| round::TrainedClient {
                client,
                params: vec![k as f32 + 1.0; n],
                local_steps: 2,
                privacy: None,
            })
            .collect(),
        ..Default::default()
    };
    let aggregation =
        round::aggregate(&mut experiment, &mut state, &round, &training).expect("aggregate");
    assert!(aggregation.skipped.is_none());
    let sizes: Vec<f64> = round
        .sampled
        .iter()
        .map(|&c| experiment.clients[c as usize].units.len() as f64)
        .collect();
    let expected = (sizes[0] * 1.0 + sizes[1] * 2.0) / (sizes[0] + sizes[1]);
    assert!(state
        .global
        .iter()
        .all(|&g| (f64::from(g) - expected).abs() < 1e-6));
    let skipped = round::aggregate(
        &mut experiment,
        &mut state,
        &round,
        &round::RoundTraining::default(),
    )
    .expect("an empty round");
    assert!(skipped.skipped.is_some());
}

#[test]
fn a_checkpoint_restores_the_state_it_saved() {
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config("test-pairs", "test-mean", &[]));
    let mut ctx = fx.ctx();
    let mut experiment = Experiment::prepare(&plan, &mut ctx).expect("prepare");
    experiment.dir.create().expect("run directory");
    let mut state = FederationState::start(&experiment);
    state.global.iter_mut().for_each(|g| *g += 0.25);
    let mut logs = RunLogs::open(&experiment, (0, 0)).expect("logs");
    let round = round::select_clients(&experiment, 0);
    let mut manifest = fedpref_rundir::Manifest::default();
    round::checkpoint(
        &mut experiment,
        &mut state,
        &round,
        &mut logs,
        &mut manifest,
    )
    .expect("checkpoint");
    assert_eq!((state.next_round, manifest.rounds_completed), (1, 1));
    let restored = FederationState::resume(&mut experiment, &ctx).expect("resume");
    assert_eq!(restored, state);
}

/// Runs `method` with `extra` overrides, expecting every round to reject all its clients: the
/// run fails, its manifest says so; returns its `metrics/rounds.jsonl`.
fn rounds_of_a_run_that_never_aggregates(method: &str, extra: &[&str]) -> String {
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config(method, "test-mean", extra));
    let err = super::run::run(&plan, &mut fx.ctx()).expect_err("no round aggregates");
    assert!(
        err.to_string().contains("no round could aggregate"),
        "{err}"
    );
    let manifest = fedpref_rundir::Manifest::read(&fedpref_rundir::RunDir::new(&plan.run_dir))
        .expect("manifest")
        .expect("written");
    assert_eq!(manifest.status, fedpref_rundir::RunStatus::Failed);
    std::fs::read_to_string(plan.run_dir.join("metrics/rounds.jsonl")).expect("rounds")
}

#[test]
fn a_client_whose_loss_is_nan_is_rejected_and_a_run_that_never_aggregates_fails() {
    let rounds = rounds_of_a_run_that_never_aggregates("test-nan", &[]);
    let rows: Vec<serde_json::Value> = rounds
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(rows.len(), 2, "every round ran and was recorded");
    for row in &rows {
        let rejected = row["rejected"].as_array().expect("rejected clients");
        assert_eq!(rejected.len(), 2, "{row}");
        let reason = rejected[0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("the loss is NaN"), "{reason}");
        assert!(row["skipped"].as_str().is_some(), "{row}");
        assert!(
            row["train"].get("loss").is_none(),
            "rejected steps stay out of the means: {row}"
        );
    }
}

#[test]
fn a_client_whose_loss_plugin_fails_is_rejected_with_the_plugins_error() {
    let rounds = rounds_of_a_run_that_never_aggregates("test-failing", &[]);
    assert_eq!(rounds.lines().count(), 2, "both rounds ran: {rounds}");
    assert!(
        rounds.contains("deliberate failure on a batch of"),
        "{rounds}"
    );
}

#[test]
fn an_update_over_the_norm_bound_is_rejected_with_its_norm() {
    use super::round::{rejection, update_norm};
    // (3, 4) from the origin: norm 5, against bounds above, at and below it.
    assert_eq!(update_norm(&[4.0, 6.0], &[1.0, 2.0]), 5.0);
    let limits = |max_update_norm| crate::config::TrainingSection {
        max_update_norm,
        ..Default::default()
    };
    assert_eq!(rejection(&[4.0, 6.0], &[1.0, 2.0], 0.5, &limits(0.0)), None);
    assert_eq!(rejection(&[4.0, 6.0], &[1.0, 2.0], 0.5, &limits(5.0)), None);
    let why = rejection(&[4.0, 6.0], &[1.0, 2.0], 0.5, &limits(4.9)).expect("rejected");
    assert!(
        why.contains("norm 5.000000 exceeds training.max_update_norm = 4.9"),
        "{why}"
    );
    // A bound so small that every client exceeds it: rejected in every round, the run fails.
    let rounds =
        rounds_of_a_run_that_never_aggregates("test-pairs", &["training.max_update_norm=1e-12"]);
    assert!(
        rounds.contains("exceeds training.max_update_norm = 0.000000000001"),
        "{rounds}"
    );
}

#[test]
fn a_run_keeps_its_newest_checkpoints() {
    let fx = Fixture::new();
    for (keep, kept) in [(2, vec![2, 3]), (1, vec![3])] {
        let config = fx.config(
            "test-pairs",
            "test-mean",
            &[
                "federation.rounds=4",
                &format!("checkpoint.keep={keep}"),
                &format!("experiment.name=\"keep{keep}\""),
            ],
        );
        let plan = fx.plan(&config);
        super::run::run(&plan, &mut fx.ctx()).expect("run");
        let rounds = fedpref_rundir::RunDir::new(&plan.run_dir)
            .checkpoint_rounds()
            .expect("checkpoints");
        assert_eq!(rounds, kept, "keep = {keep}");
    }
}

#[test]
fn a_run_directory_held_by_another_process_is_refused_untouched() {
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config("test-pairs", "test-mean", &[]));
    let held = fedpref_rundir::RunDir::new(&plan.run_dir)
        .lock()
        .expect("lock");
    let err = super::run::run(&plan, &mut fx.ctx()).expect_err("busy");
    assert!(err.to_string().contains("another fedpref process"), "{err}");
    assert!(!plan.run_dir.join("config.toml").exists());
    drop(held);
    super::run::run(&plan, &mut fx.ctx()).expect("runs once free");
}

#[test]
fn the_phases_run_one_by_one_equal_a_whole_run() {
    let fx = Fixture::new();
    let config = fx.config(
        "test-pairs",
        "test-mean",
        &["aggregators.test-mean.mu=0.01"],
    );
    let plan = fx.plan(&config);
    let summary = super::run::run(&plan, &mut fx.ctx()).expect("run");
    assert_eq!(summary.round_metrics.len(), 2);
    let whole = super::checkpoint::read(
        &fedpref_rundir::RunDir::new(&plan.run_dir)
            .latest_checkpoint()
            .expect("read")
            .expect("a checkpoint"),
    )
    .expect("checkpoint")
    .global;

    let mut by_hand = plan.clone();
    by_hand.run_dir = plan.run_dir.with_file_name("by-hand");
    let mut ctx = fx.ctx();
    let mut experiment = Experiment::prepare(&by_hand, &mut ctx).expect("prepare");
    experiment.dir.create().expect("run directory");
    let mut state = FederationState::start(&experiment);
    let mut logs = RunLogs::open(&experiment, (0, 0)).expect("logs");
    let bar = indicatif::ProgressBar::hidden();
    for index in 0..2 {
        let round = round::select_clients(&experiment, index);
        let training = round::train_clients(
            &mut experiment,
            &mut state,
            &round,
            &mut ctx,
            &mut logs,
            &bar,
        )
        .expect("train");
        round::aggregate(&mut experiment, &mut state, &round, &training).expect("aggregate");
    }
    assert_eq!(bits(&state.global), bits(&whole));
}

#[test]
fn a_round_assembled_from_files_equals_the_simulated_round_bit_for_bit() {
    use super::{
        server::{aggregate_round, ServerState},
        worker::{
            read_update, train_client_from_files, write_global, write_shard, ClientFiles,
            GlobalModel, Upload,
        },
    };
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config(
        "test-singles",
        "test-mean",
        &[
            "aggregators.test-mean.mu=0.01",
            "aggregators.test-mean.weight_offset=0.001",
        ],
    ));
    let mut ctx = fx.ctx();
    let mut experiment = Experiment::prepare(&plan, &mut ctx).expect("prepare");
    experiment.dir.create().expect("run directory");
    let mut state = FederationState::start(&experiment);
    let mut logs = RunLogs::open(&experiment, (0, 0)).expect("logs");
    let round = round::select_clients(&experiment, 0);
    let bar = indicatif::ProgressBar::hidden();
    let simulated = round::train_clients(
        &mut experiment,
        &mut state,
        &round,
        &mut ctx,
        &mut logs,
        &bar,
    )
    .expect("train");

    let work = fx.dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work folder");
    let mut outs = Vec::new();
    for &client in &round.sampled {
        let shard = work.join(format!("client-{client}.shard.jsonl"));
        write_shard(&shard, &experiment.clients[client as usize].units).expect("shard");
        let global = work.join(format!("global-{client}.safetensors"));
        let client_plan = experiment
            .aggregator
            .client_plan(client, &experiment.initial)
            .expect("plan");
        assert_eq!(client_plan.prox_mu, 0.01);
        assert_eq!(client_plan.weight_offset.len(), experiment.n_params());
        let model = GlobalModel::Params(experiment.initial.clone());
        write_global(&global, &model, &client_plan).expect("global");
        let out = work.join(format!("update-{client}"));
        let files = ClientFiles {
            global,
            shard,
            state: None,
            reference_cache: work.join(format!("reference-{client}.bin")),
            out: out.clone(),
        };
        let info = train_client_from_files(&plan, &fx.host, &files, (0, client)).expect("train");
        assert_eq!(info.steps.len(), 2);
        outs.push(out);
    }
    for (out, trained) in outs.iter().zip(&simulated.trained) {
        let (params, info) = read_update(out).expect("update");
        assert_eq!(info.client, trained.client);
        let Some(Upload::Params(params)) = params else {
            panic!("no float32 parameters from client {}", info.client);
        };
        assert_eq!(bits(&params), bits(&trained.params));
    }

    let aggregated_globally = {
        round::aggregate(&mut experiment, &mut state, &round, &simulated).expect("aggregate");
        state.global.clone()
    };
    let server = ServerState::start(&plan, &fx.host).expect("server state");
    assert_eq!(bits(&server.global), bits(&experiment.initial));
    // Arrival order does not matter: updates are aggregated in client order.
    outs.reverse();
    let (next, record) = aggregate_round(&plan, &fx.host, &server, &outs).expect("aggregate");
    assert_eq!(record.trained, round.sampled);
    assert!(record.rejected.is_empty() && record.dropped.is_empty());
    assert_eq!(next.next_round, 1);
    assert_eq!(bits(&next.global), bits(&aggregated_globally));
}

#[test]
fn the_server_rejects_updates_of_another_round_or_adapter_and_skips_an_empty_round() {
    use super::{
        server::{aggregate_round, plan_round, ServerState},
        worker::{read_update, train_client_from_files, write_shard, ClientFiles},
    };
    let fx = Fixture::new();
    let plan = fx.plan(&fx.config("test-singles", "test-mean", &[]));
    let mut ctx = fx.ctx();
    let experiment = Experiment::prepare(&plan, &mut ctx).expect("prepare");
    let server = ServerState::start(&plan, &fx.host).expect("server state");
    let work = fx.dir.path().join("work");
    let planned = plan_round(&plan, &fx.host, &server, &work).expect("plan");
    assert_eq!(
        planned.sampled,
        round::select_clients(&experiment, 0).sampled
    );
    let client = planned.sampled[0];
    let shard = work.join("client.shard.jsonl");
    write_shard(&shard, &experiment.clients[client as usize].units).expect("shard");
    let out = work.join("update");
    let files = ClientFiles {
        global: planned.globals[&client].clone(),
        shard,
        state: None,
        reference_cache: work.join("reference.bin"),
        out: out.clone(),
    };
    train_client_from_files(&plan, &fx.host, &files, (0, client)).expect("train");
    let (_, info) = read_update(&out).expect("update");

    let tamper = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let json = out.with_extension("json");
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).expect("read")).expect("json");
        edit(&mut value);
        let prefix = work.join(name);
        std::fs::write(prefix.with_extension("json"), value.to_string()).expect("write");
        std::fs::copy(
            out.with_extension("safetensors"),
            prefix.with_extension("safetensors"),
        )
        .expect("copy");
        prefix
    };
    let wrong_round = tamper("wrong-round", &|v| v["round"] = 1.into());
    let wrong_adapter = tamper("wrong-adapter", &|v| v["adapter"] = "another model".into());
    let (next, record) = aggregate_round(&plan, &fx.host, &server, &[wrong_round, wrong_adapter])
        .expect("aggregate");
    assert_eq!(record.rejected.len(), 2, "{record:?}");
    assert!(record.trained.is_empty());
    assert!(record.skipped.is_some());
    assert_eq!(bits(&next.global), bits(&server.global));
    assert_eq!(next.next_round, 1);

    let (_, twice) =
        aggregate_round(&plan, &fx.host, &server, &[out.clone(), out.clone()]).expect("aggregate");
    assert_eq!(twice.trained, vec![info.client]);
    assert_eq!(twice.rejected.len(), 1, "{twice:?}");

    let path = work.join("state.safetensors");
    next.write(&path).expect("write state");
    assert_eq!(ServerState::read(&path, &plan).expect("read state"), next);
}

#[test]
fn a_malformed_shard_is_a_located_error() {
    let fx = Fixture::new();
    let path = fx.dir.path().join("bad.shard.jsonl");
    std::fs::write(&path, "{\"pair\": {\"chosen\": {\"ids\": [1]}}}\n").expect("write");
    let message = super::worker::read_shard(&path)
        .expect_err("malformed")
        .to_string();
    assert!(
        message.contains("bad.shard.jsonl") && message.contains("line 1"),
        "{message}"
    );
}

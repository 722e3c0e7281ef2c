//! Each run of a sweep in a process of its own, as `fedpref run` does it: a plugin that aborts
//! the process (not a panic, which the host catches) or a crash in native code then fails that
//! run, marked `failed` with the reason, and the sweep goes on with the others.
//!
//! The sweep writes the run's narrowed config to a scratch file of its own (in the system's
//! temporary folder, named by the sweep's pid and the run) and starts the same executable as
//! `fedpref run <that config> --child-report <file>`, with the sweep's plugin folders. The child runs that one run ([`run_reported`]) with the terminal to itself
//! (its progress bars are the run's), then writes a [`ChildReport`]; a child that ends without
//! one crashed. The child sits in a process group of its own, so Ctrl-C reaches the sweep
//! alone, which passes it on once: the child stops after its step and reports it. On Linux the
//! child is killed when the sweep dies (a SIGKILL to the sweep leaves no orphan holding the
//! run directory).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use fedpref_rundir::write_atomic;
use serde::{Deserialize, Serialize};

use super::{mark_failed, plan_sweep, run, write_failed, RunPlan, RunSummary, SweepContext};
use crate::{config::ExperimentConfig, progress::Progress, Error, PluginHost, Result};

/// How to start a run's process.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// The `fedpref` executable.
    pub exe: PathBuf,
    /// Plugin folders to pass on (`--plugin-dir`), beyond the executable's folder and
    /// `FEDPREF_PLUGIN_PATH`, which the child searches itself.
    pub plugin_dirs: Vec<PathBuf>,
}

/// What a run's process tells the sweep.
#[derive(Debug, Serialize, Deserialize)]
pub enum ChildReport {
    /// The run finished (or was complete already).
    Done(RunSummary),
    /// The run failed; its manifest says so.
    Failed {
        /// The error, as the child printed it.
        message: String,
        /// Whether it is the user's to fix ([`Error::is_usage`]).
        usage: bool,
    },
    /// Ctrl-C stopped the run in this round.
    Interrupted {
        /// The round.
        round: u32,
    },
}

/// Runs `plan` in a child process and returns how it ended.
///
/// # Errors
/// [`Error::InChild`] with the child's error, or with how its process ended when it reported
/// nothing (the manifest is then marked `failed` here); [`Error::Interrupted`]; [`Error::Io`]
/// for the scratch files or a child that cannot start.
pub fn run_in_child(
    plan: &RunPlan,
    isolation: &Isolation,
    stop: &AtomicBool,
) -> Result<RunSummary> {
    let name = plan.key.dir_name();
    // Two sweeps may run the same run (one is then refused): their files must not collide.
    let scratch = |extension: &str| {
        std::env::temp_dir().join(format!("fedpref-{}-{name}.{extension}", std::process::id()))
    };
    let (config, report) = (scratch("toml"), scratch("json"));
    let text = toml::to_string_pretty(&plan.config)
        .map_err(|e| Error::Usage(format!("cannot serialize the config: {e}")))?;
    write_atomic(&config, text.as_bytes())?;
    let _ = std::fs::remove_file(&report);
    let child = child_command(isolation, &config, &report)
        .spawn()
        .map_err(|e| Error::io(&isolation.exe, e))?;
    let status = wait_passing_on_stop(child, stop).map_err(|e| Error::io(&isolation.exe, e))?;
    let reported = std::fs::read(&report)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ChildReport>(&bytes).ok());
    let _ = std::fs::remove_file(&report);
    let _ = std::fs::remove_file(&config);
    let failed = |message: String, usage: bool| Error::InChild {
        run_dir: plan.run_dir.clone(),
        message,
        usage,
    };
    match reported {
        Some(ChildReport::Done(summary)) => Ok(summary),
        Some(ChildReport::Failed { message, usage }) => Err(failed(message, usage)),
        Some(ChildReport::Interrupted { round }) => Err(Error::Interrupted {
            run_dir: plan.run_dir.clone(),
            round,
        }),
        None => {
            let error = failed(
                format!(
                    "{}: the run's process ended ({status}) without reporting: it aborted or crashed, e.g. inside a plugin; its last output is above",
                    plan.run_dir.display()
                ),
                false,
            );
            write_failed(&plan.run_dir, &error.to_string());
            Err(error)
        }
    }
}

/// `fedpref [--plugin-dir D]... run <config> --child-report <report>`, in a process group of
/// its own and dying with this process.
fn child_command(isolation: &Isolation, config: &Path, report: &Path) -> Command {
    let mut command = Command::new(&isolation.exe);
    for dir in &isolation.plugin_dirs {
        command.arg("--plugin-dir").arg(dir);
    }
    command
        .arg("run")
        .arg(config)
        .arg("--child-report")
        .arg(report);
    own_group_dying_with_parent(&mut command);
    command
}

/// Puts the child in a process group of its own and, on Linux, has it killed when this
/// process dies.
fn own_group_dying_with_parent(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: the hook runs in the forked child before exec and only calls prctl, which
        // is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// Waits for `child`, sending it one SIGINT once `stop` is raised (Ctrl-C on the sweep).
fn wait_passing_on_stop(mut child: Child, stop: &AtomicBool) -> std::io::Result<ExitStatus> {
    let mut passed_on = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if stop.load(Ordering::SeqCst) && !passed_on {
            passed_on = true;
            #[cfg(unix)]
            // SAFETY: kill(2) on the child's pid, which is ours until we reap it.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            #[cfg(not(unix))]
            child.kill()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The child's side: runs the one run `config` plans and writes its [`ChildReport`] to
/// `report`. Returns whether the run finished.
///
/// # Errors
/// A config that plans other than one run ([`Error::Usage`]); [`Error::Io`] for the report.
pub fn run_reported(
    config: &ExperimentConfig,
    host: &PluginHost,
    stop: Arc<AtomicBool>,
    progress: Progress,
    report: &Path,
) -> Result<bool> {
    let plans = plan_sweep(config, host)?;
    let [plan] = plans.as_slice() else {
        return Err(Error::Usage(format!(
            "--child-report runs one run, but the config plans {}",
            plans.len()
        )));
    };
    let mut ctx = SweepContext {
        host,
        stop,
        reference_cache: None,
        progress,
        isolation: None,
    };
    let outcome = run::run(plan, &mut ctx);
    let reported = match &outcome {
        Ok(summary) => ChildReport::Done(summary.clone()),
        Err(Error::Interrupted { round, .. }) => ChildReport::Interrupted { round: *round },
        Err(e) => {
            mark_failed(&plan.run_dir, e);
            ChildReport::Failed {
                message: e.to_string(),
                usage: e.is_usage(),
            }
        }
    };
    let json = serde_json::to_vec(&reported)
        .map_err(|e| Error::Usage(format!("cannot serialize the run's report: {e}")))?;
    write_atomic(report, &json)?;
    Ok(outcome.is_ok())
}

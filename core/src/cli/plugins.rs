//! `fedpref plugins list` and `fedpref plugins check <file>`.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use fedpref::PluginHost;

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Show every component of every plugin found: kind, name, version, file, data needs.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Load one library and report whether it is a usable fedpref plugin.
    Check {
        /// The shared library to check.
        file: PathBuf,
    },
}

/// Runs a plugin subcommand; `host` loads the plugins of the search path.
pub fn run(
    command: &PluginsCommand,
    host: impl FnOnce() -> anyhow::Result<PluginHost>,
) -> anyhow::Result<ExitCode> {
    match command {
        PluginsCommand::List { json } => {
            let host = host()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list_json(&host))?);
            } else {
                print!("{}", list_table(&host));
            }
        }
        PluginsCommand::Check { file } => {
            let host = PluginHost::builder().file(file).load()?;
            let plugin = &host.plugins()[0];
            println!(
                "{}: ok, plugin {} {} (API {}), {} component(s)",
                file.display(),
                plugin.manifest.name,
                plugin.manifest.version,
                plugin.manifest.api_version,
                plugin.manifest.components.len()
            );
            for info in plugin.manifest.components.iter() {
                println!("  {} {}: {}", info.kind, info.name, info.summary);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn data_needs(info: &fedpref_plugin_api::ComponentInfo) -> String {
    match info.loss_spec.into_option() {
        None => "-".to_owned(),
        Some(spec) => {
            let mut needs = vec![spec.data.as_str()];
            if spec.needs_reference {
                needs.push("reference");
            }
            if spec.needs_kl_batch {
                needs.push("kl-batch");
            }
            needs.join(", ")
        }
    }
}

fn list_table(host: &PluginHost) -> String {
    let header = ["KIND", "NAME", "VERSION", "DATA NEEDS", "FILE"];
    let rows: Vec<[String; 5]> = host
        .components()
        .map(|(info, plugin)| {
            [
                info.kind.to_string(),
                info.name.to_string(),
                plugin.manifest.version.to_string(),
                data_needs(info),
                plugin.path.display().to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no plugins found (searched the executable's directory and FEDPREF_PLUGIN_PATH; build them with `cargo xtask build-plugins`)\n".to_owned();
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_row(&header);
    for row in &rows {
        push_row(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

fn list_json(host: &PluginHost) -> serde_json::Value {
    let components: Vec<serde_json::Value> = host
        .components()
        .map(|(info, plugin)| {
            serde_json::json!({
                "kind": info.kind.as_str(),
                "name": info.name.as_str(),
                "summary": info.summary.as_str(),
                "plugin": plugin.manifest.name.as_str(),
                "version": plugin.manifest.version.as_str(),
                "api_version": plugin.manifest.api_version.as_str(),
                "file": plugin.path,
                "data_needs": info.loss_spec.into_option().map(|s| serde_json::json!({
                    "data": s.data.as_str(),
                    "reference": s.needs_reference,
                    "kl_batch": s.needs_kl_batch,
                })),
            })
        })
        .collect();
    serde_json::json!({ "components": components })
}

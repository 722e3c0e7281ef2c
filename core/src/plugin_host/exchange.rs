//! Values the host hands to plugins and takes back, on its side of the ABI: a component's
//! parameters (a TOML table of the config, passed as a JSON object) and metrics as a map.

use std::collections::BTreeMap;

use fedpref_plugin_api::Metric;

/// Parameters of a plugin component: a TOML table, handed to the plugin as a JSON object.
pub type ComponentParams = BTreeMap<String, serde_json::Value>;

/// `params` as the JSON object a plugin constructor takes (`None`: no parameters).
pub fn params_json(params: Option<&ComponentParams>) -> serde_json::Value {
    serde_json::Value::Object(params.cloned().unwrap_or_default().into_iter().collect())
}

/// A plugin's metrics by name, leaving out undefined (non-finite) values.
pub fn metric_map(metrics: &[Metric]) -> BTreeMap<String, f64> {
    metrics
        .iter()
        .filter(|m| m.value.is_finite())
        .map(|m| (m.name.to_string(), m.value))
        .collect()
}

/// Running means of named metrics (a step's micro-batches, a round's steps), each over the
/// values it had; undefined (non-finite) values are left out.
#[derive(Debug, Clone, Default)]
pub struct MetricMeans {
    sums: BTreeMap<String, (f64, usize)>,
}

impl MetricMeans {
    /// Adds a plugin's metrics.
    pub fn add(&mut self, metrics: &[Metric]) {
        for metric in metrics {
            self.add_value(metric.name.as_str(), metric.value);
        }
    }

    /// Adds one value of `name`.
    pub fn add_value(&mut self, name: &str, value: f64) {
        if value.is_finite() {
            let entry = self.sums.entry(name.to_owned()).or_default();
            entry.0 += value;
            entry.1 += 1;
        }
    }

    /// The mean of each metric.
    pub fn means(&self) -> BTreeMap<String, f64> {
        self.sums
            .iter()
            .map(|(name, (sum, n))| (name.clone(), sum / *n as f64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_map_by_name_without_undefined_values() {
        let map = metric_map(&[
            Metric::new("loss", 0.5),
            Metric::new("rewards/margins", f64::NAN),
            Metric::new("kl", f64::INFINITY),
        ]);
        assert_eq!(map, BTreeMap::from([("loss".to_owned(), 0.5)]));
    }

    #[test]
    fn means_are_over_the_values_each_metric_had() {
        let mut means = MetricMeans::default();
        means.add(&[Metric::new("a", 1.0), Metric::new("b", f64::NAN)]);
        means.add(&[Metric::new("a", 2.0), Metric::new("b", 4.0)]);
        means.add_value("loss", 0.5);
        assert_eq!(
            means.means(),
            BTreeMap::from([
                ("a".to_owned(), 1.5),
                ("b".to_owned(), 4.0),
                ("loss".to_owned(), 0.5)
            ])
        );
    }

    #[test]
    fn parameters_become_a_json_object() {
        let params = ComponentParams::from([("beta".to_owned(), serde_json::json!(0.1))]);
        assert_eq!(params_json(Some(&params)), serde_json::json!({"beta": 0.1}));
        assert_eq!(params_json(None), serde_json::json!({}));
    }
}

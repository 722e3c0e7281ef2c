//! Figures are produced and non-trivial: PNGs at 300 dpi (pixel size and `pHYs`), SVGs with
//! their axis labels and legend entries as text.

use fedpref_analysis::{
    figures::{
        self, communication::Communication, partition::PartitionFigure, png, training::Training,
        Figure, Palette,
    },
    read, ReadOptions,
};

use crate::util::write_sweep;

/// Checks the files of `figure` saved in `dir` and returns the SVG text.
fn check_saved(figure: &impl Figure, dir: &std::path::Path) -> String {
    let files = figures::save(figure, dir).unwrap();
    let bytes = std::fs::read(&files.png).unwrap();
    let (width, height, dpi) = png::inspect(&bytes).unwrap();
    let (w_in, h_in) = figure.size_in();
    assert_eq!(
        (width, height),
        ((w_in * 300.0).round() as u32, (h_in * 300.0).round() as u32)
    );
    assert!((dpi.unwrap() - 300.0).abs() < 0.01, "{:?}", files.png);
    assert!(
        width >= 900 && height >= 600,
        "a real figure, not a stub: {width}x{height}"
    );
    assert!(
        bytes.len() > 20_000,
        "{} has only {} bytes",
        files.png.display(),
        bytes.len()
    );
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    assert!(
        svg.contains(&format!(
            "viewBox=\"0 0 {} {}\"",
            (w_in * 96.0).round(),
            (h_in * 96.0).round()
        )),
        "SVG at 96 dpi"
    );
    svg
}

fn text_of(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            t.split_once('>')
                .map(|(_, rest)| rest.split("</text>").next().unwrap_or("").trim().to_owned())
        })
        .collect()
}

#[test]
fn training_curves_have_labels_legend_and_300_dpi() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = read(
        &write_sweep(
            dir.path(),
            "s",
            &["dpo", "kto", "ktor"],
            &["fedavg", "fedadam"],
            &[0, 1],
            4,
        ),
        ReadOptions::default(),
    )
    .unwrap();
    let palette = Palette::new(["dpo", "kto", "ktor"]);
    let curves = Training::from_sweeps(&[&sweep], &palette);
    assert_eq!(
        curves
            .iter()
            .map(|c| c.aggregator.as_str())
            .collect::<Vec<_>>(),
        ["fedavg", "fedadam"]
    );
    assert_eq!(curves[0].panels.len(), 3);
    // Each point averages 2 seeds x 2 clients; clients differ by 0.02, so the band is non-zero.
    // By hand, DPO with FedAvg in round 1: each run's step mean is v + 0.01 with
    // v = 0.1 + 0.02 * seed, so the line is (0.11 + 0.13) / 2; the band is the sample std of
    // the four client means 0.10, 0.12, 0.12, 0.14.
    let point = curves[0].panels[0].lines[0].points[0];
    assert!(
        (point.x - 1.0).abs() < 1e-12 && (point.mean - 0.12).abs() < 1e-12,
        "{point:?}"
    );
    let half = (0.0008f64 / 3.0).sqrt();
    let (low, high) = point.band.unwrap();
    assert!(
        (low - (0.12 - half)).abs() < 1e-12 && (high - (0.12 + half)).abs() < 1e-12,
        "{point:?}"
    );
    let svg = check_saved(&curves[0], &dir.path().join("figures"));
    let texts = text_of(&svg);
    for expected in [
        "Round",
        "Reward margin",
        "Reward accuracy",
        "Loss",
        "DPO",
        "KTO",
        "KTOR",
        "Training per round (fedavg)",
    ] {
        assert!(
            texts.iter().any(|t| t == expected),
            "{expected:?} not among {texts:?}"
        );
    }
}

#[test]
fn communication_and_partition_figures() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = read(
        &write_sweep(
            dir.path(),
            "s",
            &["dpo", "kto", "ktor"],
            &["fedavg"],
            &[0],
            2,
        ),
        ReadOptions::default(),
    )
    .unwrap();
    let palette = Palette::new(["dpo", "kto", "ktor"]);
    let communication = Communication::from_sweep(&sweep, &palette).unwrap();
    // 2 MB down + 1 MB up per round.
    assert!(communication.panels[0]
        .lines
        .iter()
        .all(|l| l.points.iter().all(|p| (p.mean - 3.0).abs() < 1e-12)));
    let texts = text_of(&check_saved(&communication, &dir.path().join("figures")));
    assert!(texts.iter().any(|t| t == "MB sent + received"), "{texts:?}");

    let partition = PartitionFigure::from_sweep(&sweep).unwrap();
    let titles: Vec<&str> = partition.splits.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        ["iid: DPO, KTO (seed 0)", "redistribute: KTOR (seed 0)"]
    );
    assert_eq!(partition.splits[1].clients, vec![[0, 5, 3], [0, 3, 5]]);
    let texts = text_of(&check_saved(&partition, &dir.path().join("figures")));
    for expected in [
        "Client",
        "pairs or single answers",
        "Pairs",
        "Desirable answers",
        "Undesirable answers",
        "iid: DPO, KTO (seed 0)",
    ] {
        assert!(
            texts.iter().any(|t| t == expected),
            "{expected:?} not among {texts:?}"
        );
    }
}

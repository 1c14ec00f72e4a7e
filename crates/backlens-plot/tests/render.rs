//! End-to-end checks of validation, SVG and PNG output.

use backlens_plot::{readable_token, Cell, PlotError, TokenTable, PNG_SCALE};

fn table(rows: usize, cols: usize) -> TokenTable {
    TokenTable {
        title: format!("{rows}x{cols} table"),
        row_labels: (0..rows).rev().map(|r| r.to_string()).collect(),
        row_caption: "layer".into(),
        col_labels: (0..cols).map(|c| format!(" tok{c}")).collect(),
        cells: (0..rows)
            .map(|r| {
                (0..cols).map(|c| Cell::new(readable_token(&format!("Ġw{r}_{c}"), 10), (r * cols + c) as f32)).collect()
            })
            .collect(),
        value_label: "|δ_i| (FF2 VJP norm)".into(),
    }
}

/// Text content of every `<text>` element, whitespace-trimmed (SVG collapses it anyway).
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("SVG must be well-formed XML");
    doc.descendants().filter(|n| n.has_tag_name("text")).map(|n| n.text().unwrap_or("").trim().to_owned()).collect()
}

fn png_info(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("valid PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).expect("valid PNG data");
    assert_eq!(frame.color_type, png::ColorType::Rgb);
    buf.truncate(frame.buffer_size());
    (frame.width, frame.height, buf)
}

#[test]
fn validate_accepts_a_good_table() {
    table(3, 2).validate().unwrap();
    table(1, 1).validate().unwrap();
}

#[test]
fn validate_rejects_row_label_mismatch() {
    let mut t = table(3, 2);
    t.row_labels.pop();
    assert!(matches!(t.validate(), Err(PlotError::RowLabelCount { labels: 2, rows: 3 })));
}

#[test]
fn validate_rejects_ragged_rows_and_column_label_mismatch() {
    let mut t = table(3, 2);
    t.cells[1].push(Cell::new("x", 1.0));
    let err = t.validate().unwrap_err();
    assert!(matches!(err, PlotError::RaggedRow { row: 1, len: 3, expected: 2 }), "{err}");
    assert!(err.to_string().contains("row 1"), "{err}");

    let mut t = table(3, 2);
    t.col_labels.push("extra".into());
    assert!(matches!(t.validate(), Err(PlotError::RaggedRow { row: 0, len: 2, expected: 3 })));
}

#[test]
fn validate_rejects_bad_values() {
    for bad in [f32::NAN, -0.5, f32::INFINITY, f32::NEG_INFINITY] {
        let mut t = table(3, 2);
        t.cells[2][1].value = bad;
        let err = t.validate().unwrap_err();
        assert!(matches!(err, PlotError::InvalidValue { row: 2, col: 1, .. }), "{bad}: {err}");
        assert!(t.to_svg().is_err() && t.to_png().is_err());
    }
    let mut t = table(1, 1);
    t.cells[0][0].value = -0.0; // negative zero is zero
    t.validate().unwrap();
}

#[test]
fn validate_rejects_empty_tables() {
    assert!(matches!(TokenTable::default().validate(), Err(PlotError::Empty { rows: 0, cols: 0 })));
    let t = TokenTable { row_labels: vec!["0".into()], cells: vec![vec![]], ..TokenTable::default() };
    assert!(matches!(t.validate(), Err(PlotError::Empty { rows: 1, cols: 0 })));
}

#[test]
fn svg_contains_every_label_and_cell_text() {
    let t = table(4, 3);
    let svg = t.to_svg().unwrap();
    let texts = svg_texts(&svg);
    for expected in t
        .row_labels
        .iter()
        .chain(&t.col_labels)
        .chain(t.cells.iter().flatten().map(|c| &c.text))
        .chain([&t.title, &t.value_label])
    {
        assert!(texts.contains(&expected.trim().to_owned()), "missing {expected:?}");
    }
    assert!(texts.contains(&"layer".to_owned()));
}

#[test]
fn row_caption_is_drawn_as_given_and_empty_draws_none() {
    let layer = table(2, 6);
    let layer_texts = svg_texts(&layer.to_svg().unwrap());

    let mut neuron = table(2, 6);
    neuron.row_caption = "neuron".into();
    let texts = svg_texts(&neuron.to_svg().unwrap());
    assert!(texts.contains(&"neuron".to_owned()), "{texts:?}");
    assert!(!texts.contains(&"layer".to_owned()), "{texts:?}");
    assert_eq!(texts.len(), layer_texts.len());

    let mut none = table(2, 6);
    none.row_caption = String::new();
    let texts = svg_texts(&none.to_svg().unwrap());
    assert!(!texts.contains(&"layer".to_owned()), "{texts:?}");
    assert!(!texts.iter().any(String::is_empty), "{texts:?}");
    assert_eq!(texts.len(), layer_texts.len() - 1);
    // The row-label column is sized for the labels alone ("0", "1"), so narrower than with
    // a caption wider than every label.
    let (w_none, _) = none.pixel_size(1.0).unwrap();
    let (w_layer, _) = layer.pixel_size(1.0).unwrap();
    let (w_neuron, _) = neuron.pixel_size(1.0).unwrap();
    assert!(w_none < w_layer && w_layer < w_neuron, "{w_none} {w_layer} {w_neuron}");
    none.to_png().unwrap();
}

#[test]
fn svg_escapes_markup_in_text() {
    let mut t = table(1, 4);
    t.title = "a <b> & \"c\"".into();
    t.col_labels = vec!["<".into(), "&".into(), "\"".into(), "'".into()];
    t.cells[0] = vec![Cell::new("</text>", 1.0), Cell::new("&amp;", 0.0), Cell::new("<&>", 2.0), Cell::new("]]>", 0.5)];
    let svg = t.to_svg().unwrap();
    assert!(svg.contains("&lt;/text&gt;") && svg.contains("&amp;amp;"), "{svg}");
    // Parsing succeeds and gives back the original strings.
    let texts = svg_texts(&svg);
    for s in ["a <b> & \"c\"", "<", "&", "\"", "'", "</text>", "&amp;", "<&>", "]]>"] {
        assert!(texts.contains(&s.to_owned()), "missing {s:?} in {texts:?}");
    }
}

#[test]
fn svg_names_a_font_family_and_has_the_layout_size() {
    let t = table(2, 2);
    let svg = t.to_svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let root = doc.root_element();
    let (w, h) = t.pixel_size(1.0).unwrap();
    assert_eq!(root.attribute("width"), Some(w.to_string().as_str()));
    assert_eq!(root.attribute("height"), Some(h.to_string().as_str()));
    let text_nodes: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("text")).collect();
    assert!(!text_nodes.is_empty());
    for n in text_nodes {
        assert_eq!(n.attribute("font-family"), Some("DejaVu Sans, sans-serif"));
        let size: f64 = n.attribute("font-size").unwrap().parse().unwrap();
        assert!((8.0..30.0).contains(&size), "font-size {size}");
    }
}

#[test]
fn svg_text_is_white_on_the_darkest_cell_and_black_on_white_cells() {
    let mut t = table(1, 2);
    t.cells[0] = vec![Cell::new("light", 0.0), Cell::new("dark", 5.0)];
    let svg = t.to_svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let fill_of = |s: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(s))
            .and_then(|n| n.attribute("fill"))
            .map(str::to_owned)
    };
    assert_eq!(fill_of("dark").as_deref(), Some("#FFFFFF"));
    assert_eq!(fill_of("light").as_deref(), Some("#000000"));
    // The darkest cell uses the full colour of the scale, the zero cell pure white.
    let rect_fills: Vec<_> =
        doc.descendants().filter(|n| n.has_tag_name("rect")).filter_map(|n| n.attribute("fill")).collect();
    assert!(rect_fills.contains(&"#67000D"), "{rect_fills:?}");
}

#[test]
fn png_has_signature_and_expected_size() {
    let t = table(3, 4);
    let bytes = t.to_png().unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let (w, h, pixels) = png_info(&bytes);
    assert_eq!((w, h), t.pixel_size(PNG_SCALE).unwrap());
    let (sw, sh) = t.pixel_size(1.0).unwrap();
    assert!(w.abs_diff(2 * sw) <= 4 && h.abs_diff(2 * sh) <= 4, "{w}x{h} vs svg {sw}x{sh}");
    // The largest value is drawn in the scale's full colour.
    assert!(pixels.chunks(3).any(|p| p == [103, 0, 13]));
    // Text was rasterized: there are dark grey pixels besides pure colours.
    assert!(pixels.chunks(3).any(|p| p == [20, 20, 20]));
}

#[test]
fn png_scale_is_checked() {
    let t = table(1, 1);
    for bad in [0.0, -1.0, 100.0, f64::NAN] {
        assert!(matches!(t.to_png_with_scale(bad), Err(PlotError::InvalidScale(_))));
    }
    let (w, h, _) = png_info(&t.to_png_with_scale(1.0).unwrap());
    assert_eq!((w, h), t.pixel_size(1.0).unwrap());
}

#[test]
fn thirty_by_eight_table_renders_legibly_sized() {
    let t = table(30, 8);
    let svg = t.to_svg().unwrap();
    assert_eq!(svg_texts(&svg).len(), 1 + 1 + 30 + 8 + 30 * 8 + 1 + 3);
    let (w, h, _) = png_info(&t.to_png().unwrap());
    assert!((1000..4000).contains(&w) && (1500..4000).contains(&h), "{w}x{h}");
}

#[test]
fn one_by_one_table_renders() {
    let t = TokenTable {
        title: String::new(),
        row_labels: vec!["0".into()],
        row_caption: "layer".into(),
        col_labels: vec!["x".into()],
        cells: vec![vec![Cell::new("", 0.0)]],
        value_label: String::new(),
    };
    assert!(svg_texts(&t.to_svg().unwrap()).contains(&"x".to_owned()));
    let (w, h, _) = png_info(&t.to_png().unwrap());
    assert!(w > 0 && h > 0);
}

#[test]
fn huge_labels_are_an_error_not_a_panic() {
    let mut t = table(1, 1);
    t.col_labels[0] = "W".repeat(200_000);
    assert!(matches!(t.to_png(), Err(PlotError::TooLarge { .. })));
    assert!(matches!(t.pixel_size(1.0), Err(PlotError::TooLarge { .. })));
}

#[test]
fn write_svg_and_png_files() {
    let dir = std::env::temp_dir().join(format!("backlens-plot-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let t = table(2, 2);
    t.write_svg(dir.join("t.svg")).unwrap();
    t.write_png(dir.join("t.png")).unwrap();
    assert!(std::fs::read_to_string(dir.join("t.svg")).unwrap().starts_with("<svg"));
    assert!(std::fs::read(dir.join("t.png")).unwrap().starts_with(b"\x89PNG"));
    std::fs::remove_dir_all(&dir).unwrap();

    let err = t.write_svg(dir.join("missing-dir").join("t.svg")).unwrap_err();
    assert!(matches!(err, PlotError::Io { .. }));
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

/// Names of the files in `dir`, sorted.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Figures are written atomically: a success leaves exactly the figure, a failed write (the
/// parent is a file; the folder is read-only) leaves no partial file and no temporary file.
#[test]
fn writes_are_atomic_and_a_failed_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(2, 3);
    t.write(dir.path().join("t.svg")).unwrap();
    t.write(dir.path().join("t.png")).unwrap();
    assert_eq!(listing(dir.path()), ["t.png", "t.svg"]);
    assert_eq!(std::fs::read_to_string(dir.path().join("t.svg")).unwrap(), t.to_svg().unwrap());

    let err = t.write(dir.path().join("t.svg").join("inner.svg")).unwrap_err();
    assert!(matches!(err, PlotError::Io { .. }), "{err}");
    assert_eq!(listing(dir.path()), ["t.png", "t.svg"]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        // root ignores permissions: only check when the folder really is read-only to us.
        if std::fs::File::create(locked.join("probe")).is_err() {
            assert!(t.write(locked.join("t.svg")).is_err());
            assert!(listing(&locked).is_empty(), "{:?}", listing(&locked));
        } else {
            std::fs::remove_file(locked.join("probe")).unwrap();
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

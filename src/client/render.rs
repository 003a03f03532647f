//! Human output: aligned tables and units a person reads.

/// A ratio or percentage for JSON, rounded to what it means (0.95, not
/// 0.949999988079071: an `f32` widened to `f64`).
pub fn hundredths(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A table whose columns are padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles (empty titles: no header line).
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose columns are known only at run time.
    pub fn with_header(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row of any length.
    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Adds a row.
    pub fn row<const N: usize>(&mut self, cells: [&str; N]) {
        self.rows
            .push(cells.iter().map(|s| s.to_string()).collect());
    }

    /// Renders with a header line when any title is non-empty.
    pub fn render(&self) -> String {
        let with_header = self.header.iter().any(|h| !h.is_empty());
        let mut lines: Vec<&Vec<String>> = Vec::new();
        if with_header {
            lines.push(&self.header);
        }
        lines.extend(self.rows.iter());
        let cols = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                lines
                    .iter()
                    .filter_map(|l| l.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in lines {
            let mut s = String::new();
            for (c, cell) in line.iter().enumerate() {
                if c + 1 == line.len() {
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        }
        out
    }

    /// Renders without a header line (key/value listings).
    pub fn render_plain(&self) -> String {
        self.render()
    }
}

/// `3 h 02 min`, `4 min 05 s`, `12.3 s`, `250 ms`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{} min {:02} s", s / 60, s % 60),
        3_600_000..=86_399_999 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {:02} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `512 B`, `1.5 KiB`, `512.0 MiB`, `2.00 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(["NAME", "RSS"]);
        t.row(["web", "1.0 MiB"]);
        t.row(["database", "12 KiB"]);
        assert_eq!(
            t.render(),
            "NAME      RSS\nweb       1.0 MiB\ndatabase  12 KiB\n"
        );
    }

    #[test]
    fn table_without_header() {
        let mut t = Table::new(["", ""]);
        t.row(["a", "1"]);
        t.row(["long key", "2"]);
        assert_eq!(t.render_plain(), "a         1\nlong key  2\n");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(250), "250 ms");
        assert_eq!(human_duration(12_345), "12.3 s");
        assert_eq!(human_duration(245_000), "4 min 05 s");
        assert_eq!(human_duration(3 * 3_600_000 + 120_000), "3 h 02 min");
        assert_eq!(human_duration(90_000_000), "1 d 01 h");
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(512 << 20), "512.0 MiB");
        assert_eq!(
            human_bytes(u64::MAX),
            "16.0 EiB".replace("EiB", "PiB").replace("16.0", "16384.0")
        );
    }
}

/// A one-line chart of `values` scaled to their maximum: `▁▂▃▄▅▆▇█`.
pub fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if max == 0 {
                BARS[0]
            } else {
                BARS[((v as u128 * 7 + max as u128 / 2) / max as u128) as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod sparkline_tests {
    use super::sparkline;

    #[test]
    fn scales_to_the_maximum() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8]), "▁▂▃▅█");
        assert_eq!(sparkline(&[0, 0]), "▁▁");
        assert_eq!(sparkline(&[u64::MAX, 0]), "█▁");
        assert_eq!(sparkline(&[]), "");
    }
}

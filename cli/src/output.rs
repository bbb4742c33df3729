//! How results reach people (aligned tables, relative times) and programs (`--json`: one JSON
//! object per line, through [`Out`]).

use roster_core::time::Timestamp;
pub use roster_runtime::out::{Out, Stream};

/// A table whose columns are padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_uppercase()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// True when only the header is there.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// Renders with two spaces between columns; the last column is not padded.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; cols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    let pad = widths[i] - c.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.pop();
        out
    }
}

/// "just now", "42s ago", "3m ago", "5h ago", "2d ago", or "in 4d" for the future.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let delta = now.as_micros().saturating_sub(t.as_micros()) / 1_000_000;
    let (future, secs) = if delta < 0 {
        (true, -delta)
    } else {
        (false, delta)
    };
    let span = match secs {
        0..=1 => return "just now".into(),
        2..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["name", "id"]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "2".into()]);
        assert_eq!(t.render(), "NAME    ID\na       1\nlonger  2");
    }

    #[test]
    fn relative_times() {
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 - 42_000), now),
            "42s ago"
        );
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 - 180_000), now),
            "3m ago"
        );
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 + 4 * 86_400_000), now),
            "in 4d"
        );
    }
}

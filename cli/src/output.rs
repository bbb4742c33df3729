//! Output of the commands run here (`bench`, `sandbox verify`, `subscribe` from NATS): lines for
//! people or, with `--json`, one JSON object per line; and the aligned tables listings use.
//! (What operations answer is rendered by `render`.)

use std::io::Write;

use serde::Serialize;

/// The output mode chosen by `--json`, onto this process's standard output.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// One JSON object per line instead of text for people.
    pub json: bool,
}

impl Out {
    /// Writes `text` to standard output, flushed at once (for readers that follow).
    pub fn write(&self, text: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()
    }

    /// Prints one JSON object on its own line.
    pub fn json_line<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        let mut text = serde_json::to_string(value).map_err(std::io::Error::other)?;
        text.push('\n');
        self.write(&text)
    }

    /// Prints a line for people.
    pub fn line(&self, text: impl AsRef<str>) -> std::io::Result<()> {
        self.write(&format!("{}\n", text.as_ref()))
    }
}

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
}

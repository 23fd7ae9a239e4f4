//! Plain-text tables for stdout: cells left-aligned in columns two spaces apart, trailing
//! spaces trimmed (the layout of `kubectl get`).

use std::fmt::Write as _;

/// `rows` (the first is usually the header) as aligned lines, each ending in a newline.
pub fn aligned<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_and_lines_end_trimmed() {
        let rows = vec![
            vec!["NAME".to_owned(), "VERSION".to_owned(), "NOTE".to_owned()],
            vec![
                "ingress-nginx".to_owned(),
                "1.9.4".to_owned(),
                String::new(),
            ],
        ];
        assert_eq!(
            aligned(&rows),
            "NAME           VERSION  NOTE\ningress-nginx  1.9.4\n"
        );
    }
}

//! Highlighted snippets of search results (issue 15), made here for both stores from
//! the matched chunk's text, which is only ever text every reader may see. A snippet
//! is plain text and the ranges to highlight, never markup: clients render it safely
//! whatever the document holds.

use serde::Serialize;

use crate::search::{Clause, typo_budget, within_edits};

/// The longest snippet, in characters (ellipses included).
pub const SNIPPET_CHARS: usize = 240;
/// How much text a snippet shows before its first highlight, at most.
const LEAD_CHARS: usize = 60;

/// A range of a snippet's text, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Highlight {
    pub start: u32,
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    pub text: String,
    pub highlights: Vec<Highlight>,
}

/// Whether a word of the text matches a query word as the engines match it: equal,
/// begun by a prefix, or within the typo budget.
fn word_matches(clause_word: &str, prefix: bool, word: &str) -> bool {
    if prefix {
        return word.starts_with(clause_word);
    }
    word == clause_word || within_edits(clause_word, word, typo_budget(clause_word))
}

/// The snippet of `text` for a query: a window of at most [`SNIPPET_CHARS`]
/// characters starting shortly before the first match, with every matched word
/// (and every word of a matched phrase) highlighted. Text without a match gives
/// its beginning.
pub fn snippet(text: &str, clauses: &[Clause]) -> Snippet {
    // Words of the text: (start char, length in chars, lower-case word).
    let mut words: Vec<(usize, usize, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut count = 0usize;
    for c in text.chars() {
        if c.is_alphanumeric() {
            let entry = current.get_or_insert_with(|| (count, String::new()));
            entry.1.extend(c.to_lowercase());
        } else if let Some((start, word)) = current.take() {
            words.push((start, count - start, word));
        }
        count += 1;
    }
    if let Some((start, word)) = current.take() {
        words.push((start, count - start, word));
    }

    let mut marked = vec![false; words.len()];
    for clause in clauses {
        match clause {
            Clause::Word { word, prefix } => {
                for (index, (_, _, candidate)) in words.iter().enumerate() {
                    if word_matches(word, *prefix, candidate) {
                        marked[index] = true;
                    }
                }
            }
            Clause::Phrase(phrase) => {
                if phrase.is_empty() || phrase.len() > words.len() {
                    continue;
                }
                for start in 0..=words.len() - phrase.len() {
                    if phrase.iter().zip(&words[start..]).all(|(want, (_, _, have))| want == have) {
                        marked[start..start + phrase.len()].iter_mut().for_each(|m| *m = true);
                    }
                }
            }
        }
    }

    let total = count;
    let first = words.iter().zip(&marked).find(|(_, m)| **m).map_or(0, |((start, _, _), _)| *start);
    let mut window_start = first.saturating_sub(LEAD_CHARS);
    // Start at a word's beginning: the first word starting at or after the window start.
    if window_start > 0 {
        window_start =
            words.iter().map(|(start, _, _)| *start).find(|start| *start >= window_start).unwrap_or(window_start);
    }
    let lead = if window_start > 0 { "… " } else { "" };
    let budget = SNIPPET_CHARS - lead.chars().count();
    let mut window_end = (window_start + budget).min(total);
    let trail = if window_end < total {
        // End before the word the window cuts through, leaving room for the ellipsis.
        window_end = (window_start + budget - 2).min(total);
        if let Some((start, _, _)) =
            words.iter().find(|(start, length, _)| *start < window_end && start + length > window_end)
            && *start > window_start
        {
            window_end = *start;
        }
        " …"
    } else {
        ""
    };
    let body: String = text.chars().skip(window_start).take(window_end - window_start).collect();
    let body = body.trim_end().to_owned();
    let body_chars = body.chars().count();
    let shift = lead.chars().count();
    let highlights = words
        .iter()
        .zip(&marked)
        .filter(|(_, m)| **m)
        .filter(|((start, length, _), _)| *start >= window_start && start + length <= window_start + body_chars)
        .map(|((start, length, _), _)| Highlight {
            start: u32::try_from(start - window_start + shift).unwrap_or(u32::MAX),
            length: u32::try_from(*length).unwrap_or(u32::MAX),
        })
        .collect();
    Snippet { text: format!("{lead}{body}{trail}"), highlights }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::SearchText;

    fn highlighted(snippet: &Snippet) -> Vec<String> {
        let chars: Vec<char> = snippet.text.chars().collect();
        snippet
            .highlights
            .iter()
            .map(|h| chars[h.start as usize..(h.start + h.length) as usize].iter().collect())
            .collect()
    }

    fn of(text: &str, query: &str) -> Snippet {
        snippet(text, SearchText::parse(query).expect("valid").clauses())
    }

    #[test]
    fn words_prefixes_typos_and_phrases_are_highlighted() {
        let result = of("Net revenue grew; the Revenue report is final.", "revenue");
        assert_eq!(highlighted(&result), vec!["revenue", "Revenue"]);
        assert_eq!(highlighted(&of("Growing growth grew", "grow*")), vec!["Growing", "growth"]);
        assert_eq!(highlighted(&of("the invoice total", "invoise")), vec!["invoice"]);
        assert_eq!(highlighted(&of("net revenue, revenue net", "\"net revenue\"")), vec!["net", "revenue"]);
    }

    #[test]
    fn a_late_match_is_shown_with_some_text_before_it() {
        let text = format!("{}the needle is here{}", "hay ".repeat(100), " straw".repeat(100));
        let result = of(&text, "needle");
        assert!(result.text.starts_with("… hay"));
        assert!(result.text.ends_with(" …"));
        assert!(result.text.chars().count() <= SNIPPET_CHARS, "{}", result.text.chars().count());
        assert_eq!(highlighted(&result), vec!["needle"]);
    }

    #[test]
    fn text_without_a_match_gives_its_beginning() {
        let result = of("Nothing to see", "absent");
        assert_eq!(result, Snippet { text: "Nothing to see".into(), highlights: vec![] });
    }

    #[test]
    fn markup_stays_text() {
        let result = of("<script>alert(1)</script> payload", "payload");
        assert_eq!(result.text, "<script>alert(1)</script> payload");
        assert_eq!(highlighted(&result), vec!["payload"]);
    }
}

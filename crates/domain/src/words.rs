//! How text becomes the words search compares (issue 15): runs of letters and
//! digits, in lower case. SQLite's FTS5 tokenizer (`unicode61`) cuts text the same
//! way; Lucene's standard tokenizer keeps `report.pdf` or `v1.2` whole, so the text
//! Neo4j indexes is these words joined by spaces ([`index_words`]).

/// The longest word; longer runs are cut (no real word is longer).
pub const MAX_WORD_CHARS: usize = 64;

/// The words of `text`: runs of letters and digits, in lower case, at most
/// [`MAX_WORD_CHARS`] characters each.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| word.chars().take(MAX_WORD_CHARS).flat_map(char::to_lowercase).collect())
}

/// The words of `text` joined by single spaces: what an index that cuts at white
/// space must be given to see the words [`words`] sees.
pub fn index_words(text: &str) -> String {
    words(text).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_separates_words() {
        assert_eq!(index_words("Q3-Report.PDF, v1.2 (draft)"), "q3 report pdf v1 2 draft");
        assert_eq!(index_words("  "), "");
    }
}

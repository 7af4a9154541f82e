//! `--pages 1-3,5`: which pages of a PDF to use, parsed once and checked against the real page
//! count only when the document is open (so the same flag works for every file of a batch).
use std::collections::BTreeSet;
use std::str::FromStr;

/// A set of 1-based page numbers, kept sorted and without duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PageSet {
    pages: BTreeSet<usize>,
}

impl PageSet {
    /// The given 1-based page numbers (zeros are dropped: there is no page 0).
    pub fn from_pages(pages: impl IntoIterator<Item = usize>) -> PageSet {
        PageSet { pages: pages.into_iter().filter(|&p| p > 0).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Page numbers in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.pages.iter().copied()
    }

    /// The largest page asked for.
    pub fn last(&self) -> Option<usize> {
        self.pages.last().copied()
    }
}

impl FromStr for PageSet {
    type Err = String;

    /// `1-3,5`, `7`, `2-2`; spaces around items allowed. Errors name the bad item.
    fn from_str(s: &str) -> Result<PageSet, String> {
        let mut pages = BTreeSet::new();
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!("empty item in page list {s:?} (expected e.g. 1-3,5)"));
            }
            let num = |t: &str| -> Result<usize, String> {
                let n: usize = t.trim().parse().map_err(|_| format!("{t:?} is not a page number (in {s:?}; expected e.g. 1-3,5)"))?;
                if n == 0 {
                    return Err(format!("page numbers start at 1 (got 0 in {s:?})"));
                }
                Ok(n)
            };
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let n = num(item)?;
                    (n, n)
                }
            };
            if a > b {
                return Err(format!("page range {item:?} is reversed (write {b}-{a})"));
            }
            // A range is expanded: bound it so `1-999999999` cannot allocate gigabytes. No
            // document we accept has more pages than this.
            if b > MAX_PAGE_NUMBER {
                return Err(format!("page {b} in {s:?} is beyond any document this tool accepts (max page number {MAX_PAGE_NUMBER})"));
            }
            pages.extend(a..=b);
        }
        Ok(PageSet { pages })
    }
}

/// Largest page number a `--pages` list may name.
pub const MAX_PAGE_NUMBER: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        let p: PageSet = "1-3,5".parse().unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), [1, 2, 3, 5]);
        let p: PageSet = " 4 , 2-2,1-2 ".parse().unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(p.last(), Some(4));
    }

    #[test]
    fn refuses_zero_reversed_and_junk() {
        assert!("0".parse::<PageSet>().unwrap_err().contains("start at 1"));
        assert!("1-0".parse::<PageSet>().unwrap_err().contains("start at 1"));
        assert!("5-3".parse::<PageSet>().unwrap_err().contains("reversed"));
        assert!("1,,2".parse::<PageSet>().unwrap_err().contains("empty item"));
        assert!("a-b".parse::<PageSet>().unwrap_err().contains("not a page number"));
        assert!("".parse::<PageSet>().is_err());
        assert!("1-999999999".parse::<PageSet>().unwrap_err().contains("beyond"));
    }
}

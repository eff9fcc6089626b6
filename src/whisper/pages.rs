//! The pages of a whisper file that one update has read, kept until that update ends.
//!
//! An `update_many` of a few points reads a handful of small regions: each archive's slot 0
//! and, for each propagation, the higher archive's span. With the usual layouts several share a
//! 4 KiB page (the header and the first archive's first slots; an archive's last slots and the
//! next archive's slot 0), so reading whole pages and keeping them for the rest of the update
//! turns about seven `pread`s into three. Writes made during the update go to the file and into
//! the kept pages alike, so a later read in the same update sees what the file holds. Nothing
//! is kept across updates: another process may write the file in between.

use super::Result;

/// The unit of reading: the kernel's page, so a whole-page read costs one page-cache lookup.
pub(super) const PAGE: u64 = 4096;

/// Reads longer than this bypass the pages (a fetch's window, a long propagation span):
/// copying them twice costs more than the system call it would save.
pub(super) const MAX_PAGED_READ: u64 = 1024;

struct Page {
    number: u64,
    /// Bytes of the page the file holds: fewer than `PAGE` only for the file's last page.
    valid: usize,
    bytes: Box<[u8]>,
}

/// The kept pages of one update (a few at most, so a list).
#[derive(Default)]
pub(super) struct OpPages {
    pages: Vec<Page>,
}

impl OpPages {
    pub(super) fn clear(&mut self) {
        self.pages.clear();
    }

    /// Keeps the bytes a read from offset 0 returned (the header read) as page 0, taking the
    /// buffer rather than copying it.
    pub(super) fn seed_start(&mut self, start: Vec<u8>) {
        if start.is_empty() {
            // Nothing was read (a file this handle created): an empty page would mean an
            // empty file.
            return;
        }
        let valid = start.len().min(PAGE as usize);
        let mut bytes = start;
        bytes.resize(PAGE as usize, 0);
        self.pages.retain(|p| p.number != 0);
        self.pages.push(Page {
            number: 0,
            valid,
            bytes: bytes.into_boxed_slice(),
        });
    }

    fn find(&self, number: u64) -> Option<&Page> {
        self.pages.iter().find(|p| p.number == number)
    }

    /// Up to `len` bytes at `offset`, fewer only where the file ends. Pages not kept yet are
    /// read with `fill(offset, buf)`, which returns how many bytes the file had (one call per
    /// run of missing pages).
    pub(super) fn read(
        &mut self,
        offset: u64,
        len: usize,
        mut fill: impl FnMut(u64, &mut [u8]) -> Result<usize>,
    ) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = offset + len as u64;
        let first = offset / PAGE;
        let last = (end - 1) / PAGE;
        let mut n = first;
        while n <= last {
            if self.find(n).is_some() {
                n += 1;
                continue;
            }
            let mut run_end = n + 1;
            while run_end <= last && self.find(run_end).is_none() {
                run_end += 1;
            }
            if run_end == n + 1 {
                // The usual case: one page, read straight into the buffer it is kept in.
                let mut bytes = vec![0u8; PAGE as usize].into_boxed_slice();
                let valid = fill(n * PAGE, &mut bytes)?.min(PAGE as usize);
                self.pages.push(Page {
                    number: n,
                    valid,
                    bytes,
                });
                n = run_end;
                continue;
            }
            let mut buf = vec![0u8; ((run_end - n) * PAGE) as usize];
            let got = fill(n * PAGE, &mut buf)?;
            for (i, chunk) in buf.chunks_exact(PAGE as usize).enumerate() {
                let valid = got.saturating_sub(i * PAGE as usize).min(PAGE as usize);
                self.pages.push(Page {
                    number: n + i as u64,
                    valid,
                    bytes: chunk.into(),
                });
            }
            n = run_end;
        }
        let mut out = Vec::with_capacity(len);
        for n in first..=last {
            let Some(page) = self.find(n) else { break };
            let page_start = n * PAGE;
            let from = offset.max(page_start) - page_start;
            let to = (end.min(page_start + PAGE) - page_start) as usize;
            let to = to.min(page.valid);
            if (from as usize) < to {
                out.extend_from_slice(&page.bytes[from as usize..to]);
            }
            if page.valid < PAGE as usize {
                // The file ends in this page: a read stops there, as `pread` would.
                break;
            }
        }
        Ok(out)
    }

    /// `data` was written at `offset`: the kept pages it covers now hold it too.
    pub(super) fn wrote(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        for page in &mut self.pages {
            let page_start = page.number * PAGE;
            let page_end = page_start + PAGE;
            if end <= page_start || page_end <= offset {
                continue;
            }
            let from = offset.max(page_start);
            let to = end.min(page_end);
            let src = &data[(from - offset) as usize..(to - offset) as usize];
            let at = (from - page_start) as usize;
            page.bytes[at..at + src.len()].copy_from_slice(src);
            page.valid = page.valid.max(at + src.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake file of `len` bytes where byte i holds i mod 251, counting fills.
    fn filler(
        len: u64,
        calls: &std::cell::Cell<u32>,
    ) -> impl FnMut(u64, &mut [u8]) -> Result<usize> + '_ {
        move |offset, buf| {
            calls.set(calls.get() + 1);
            let n = (len.saturating_sub(offset) as usize).min(buf.len());
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = ((offset + i as u64) % 251) as u8;
            }
            Ok(n)
        }
    }

    fn expected(offset: u64, len: u64, file_len: u64) -> Vec<u8> {
        (offset..(offset + len).min(file_len))
            .map(|i| (i % 251) as u8)
            .collect()
    }

    #[test]
    fn reads_match_the_file_and_share_pages() {
        let calls = std::cell::Cell::new(0);
        let mut pages = OpPages::default();
        let len = 3 * PAGE + 100;
        for (off, n) in [
            (52, 180),
            (4090, 12),
            (4000, 200),
            (8190, 20),
            (3 * PAGE + 90, 50),
            (0, 1024),
        ] {
            let got = pages.read(off, n as usize, filler(len, &calls)).unwrap();
            assert_eq!(got, expected(off, n, len), "read {off}+{n}");
        }
        // Pages 0, 1, 2 and 3, each read once.
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn writes_show_in_later_reads_and_extend_a_short_page() {
        let calls = std::cell::Cell::new(0);
        let mut pages = OpPages::default();
        let len = PAGE + 10;
        assert_eq!(pages.read(PAGE, 20, filler(len, &calls)).unwrap().len(), 10);
        pages.wrote(PAGE - 4, &[9; 12]);
        // Page 0 was not kept: it is read afresh (from the fake, which did not take the write).
        let got = pages.read(PAGE - 4, 16, filler(len, &calls)).unwrap();
        assert_eq!(&got[..4], &expected(PAGE - 4, 4, len)[..]);
        assert_eq!(&got[4..12], &[9; 8]);
        assert_eq!(&got[12..], &expected(PAGE + 8, 2, len)[..]);
        pages.wrote(PAGE + 8, &[7; 8]);
        let got = pages.read(PAGE + 8, 100, filler(len, &calls)).unwrap();
        assert_eq!(got, vec![7; 8]);
    }

    #[test]
    fn seeded_start_is_not_read_again() {
        let calls = std::cell::Cell::new(0);
        let mut pages = OpPages::default();
        let start = expected(0, 52, 52);
        pages.seed_start(start);
        assert_eq!(
            pages.read(10, 20, filler(52, &calls)).unwrap(),
            expected(10, 20, 52)
        );
        assert_eq!(
            pages.read(40, 20, filler(52, &calls)).unwrap(),
            expected(40, 12, 52)
        );
        assert_eq!(calls.get(), 0);
    }
}

//! Projections the stored rows do not hold: the log as of an earlier
//! `ingested_at` (`leadline.as_of`), or folded with another attribution
//! window. The model refolds them from its input segments one component at
//! a time (no rule of SPEC §2 looks across components, and a component of
//! the whole log holds whole components of any earlier state of it), so
//! memory holds the components being folded and the rows asked for, never
//! the whole log's events. A component that an as-of query sees whole,
//! under the model's window, is read from its stored rows; one it sees
//! nothing of is skipped.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::RecordBatch;

use super::{DIR, Part, ReadModel, component_events};
use crate::error::Result;
use crate::event::Event;
use crate::log::Ingested;
use crate::metrics::{ProjectedCounts, metric_rows};
use crate::parallel::{cores, in_parallel};
use crate::project::project;
use crate::project::tables::table_batch;

/// What a fold of some events gives: the counts, span and pairs of their
/// projections, and the rows of the parts asked for (in SQL form).
#[derive(Debug, Clone, Default)]
pub struct Refolded {
    pub counts: ProjectedCounts,
    /// Earliest and latest `occurred_at`.
    pub span: Option<(i64, i64)>,
    /// (service, environment) pairs that have deployment or incident events.
    pub pairs: BTreeSet<(String, String)>,
    /// The rows of each part asked for, in the order asked.
    pub parts: Vec<Vec<RecordBatch>>,
}

impl Refolded {
    /// Folds `events` (SPEC §2, with the attribution `window`) and computes
    /// `parts` from their projections: the one place both the model's
    /// components and the in-memory folds of the log go through.
    pub fn of_events(events: &[Event], window: Option<i64>, parts: &[Part]) -> Result<Refolded> {
        let p = project(events, window);
        let parts = parts
            .iter()
            .map(|&part| {
                Ok(vec![match part {
                    Part::Rows(table) => table_batch(table, &p)?,
                    Part::Metrics(grain) => metric_rows(&p, grain)?,
                }])
            })
            .collect::<Result<_>>()?;
        Ok(Refolded { counts: ProjectedCounts::of(&p), span: p.span, pairs: p.pairs, parts })
    }

    /// Adds the projections of events disjoint from this one's.
    fn add(&mut self, other: Refolded) {
        self.counts += other.counts;
        if let Some((lo, hi)) = other.span {
            self.span = Some(self.span.map_or((lo, hi), |(l, h)| (l.min(lo), h.max(hi))));
        }
        self.pairs.extend(other.pairs);
        // A component seen empty has no parts.
        self.parts.iter_mut().zip(other.parts).for_each(|(mine, theirs)| mine.extend(theirs));
    }

    /// About how many bytes it holds.
    pub fn bytes(&self) -> usize {
        let batches: usize = self.parts.iter().flatten().map(RecordBatch::get_array_memory_size).sum();
        batches + self.pairs.iter().map(|(s, e)| s.len() + e.len() + 48).sum::<usize>()
    }
}

impl ReadModel {
    /// The projections of the log this model folded, as of `as_of` (only
    /// events ingested then or before; `None`: all) with the attribution
    /// `window`, and the rows of `parts`. Reads files and folds: call it off
    /// the async workers.
    pub fn refold(&self, as_of: Option<i64>, window: Option<i64>, parts: &[Part]) -> Result<Refolded> {
        let m = &self.manifest;
        let dir = self.root.join(DIR);
        let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for s in 0..m.services.len() as u32 {
            members.entry(m.find(s)).or_default().push(s);
        }
        let work: Vec<(&super::Component, Vec<u32>)> =
            m.components.iter().map(|(root, c)| (c, members.remove(root).unwrap_or_default())).collect();
        let folded = in_parallel(&work, cores(), |(c, services)| {
            let seen_whole = as_of.is_none_or(|t| c.ingested.is_some_and(|(_, last)| last <= t));
            let seen_none = as_of.is_some_and(|t| c.ingested.is_none_or(|(first, _)| first > t));
            if seen_none {
                return Ok(Refolded::default());
            }
            if seen_whole && window == m.window {
                let parts = parts.iter().map(|&part| self.read_component(part, c)).collect::<Result<_>>()?;
                let pairs = c.pairs.iter().cloned().collect();
                return Ok(Refolded { counts: c.counts, span: c.span, pairs, parts });
            }
            let range = Ingested { after: None, through: as_of };
            let mut events = Vec::new();
            for service in component_events(&dir, m, services, range)? {
                events.extend(service.events);
            }
            Refolded::of_events(&events, window, parts)
        })?;
        let mut out = Refolded { parts: vec![Vec::new(); parts.len()], ..Refolded::default() };
        folded.into_iter().for_each(|f| out.add(f));
        Ok(out)
    }
}

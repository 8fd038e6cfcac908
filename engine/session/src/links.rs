//! The connections of an endpoint, by id, remembering which were changed since the
//! driver last asked: only those can have bytes to send, so a driver with thousands of
//! idle connections polls the few an event touched, not all of them.

use super::link::Link;
use super::types::{IdMap, LinkId};

/// The links of an endpoint. Every mutable access marks the link as changed.
#[derive(Debug)]
pub(crate) struct Links<P> {
    map: IdMap<LinkId, Link<P>>,
    /// Links changed since the last [`drain_changed`](Self::drain_changed), each once.
    changed: Vec<LinkId>,
}

impl<P> Default for Links<P> {
    fn default() -> Self {
        Links {
            map: IdMap::default(),
            changed: Vec::new(),
        }
    }
}

impl<P> Links<P> {
    fn mark(changed: &mut Vec<LinkId>, link: &mut Link<P>) {
        if !link.changed {
            link.changed = true;
            changed.push(link.id);
        }
    }

    pub(crate) fn get(&self, id: &LinkId) -> Option<&Link<P>> {
        self.map.get(id)
    }

    /// The link, marked as changed.
    pub(crate) fn get_mut(&mut self, id: &LinkId) -> Option<&mut Link<P>> {
        let link = self.map.get_mut(id)?;
        Self::mark(&mut self.changed, link);
        Some(link)
    }

    /// The link, not marked: for taking its output, which adds none.
    pub(crate) fn get_mut_unmarked(&mut self, id: &LinkId) -> Option<&mut Link<P>> {
        self.map.get_mut(id)
    }

    pub(crate) fn insert(&mut self, id: LinkId, mut link: Link<P>) {
        link.changed = false;
        Self::mark(&mut self.changed, &mut link);
        self.map.insert(id, link);
    }

    pub(crate) fn remove(&mut self, id: &LinkId) -> Option<Link<P>> {
        self.map.remove(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &LinkId> {
        self.map.keys()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Link<P>> {
        self.map.values()
    }

    /// Every link, each marked as changed.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Link<P>> {
        for link in self.map.values_mut() {
            Self::mark(&mut self.changed, link);
        }
        self.map.values_mut()
    }

    /// Gives memory back after a burst of connections is gone.
    pub(crate) fn shrink_if_sparse(&mut self) {
        super::types::shrink_if_sparse(&mut self.map);
        super::types::shrink_vec_if_sparse(&mut self.changed);
    }

    /// Moves the ids of the links changed since the last call into `out` (a link
    /// removed since may be among them).
    pub(crate) fn drain_changed(&mut self, out: &mut Vec<LinkId>) {
        for id in self.changed.drain(..) {
            if let Some(link) = self.map.get_mut(&id) {
                link.changed = false;
            }
            out.push(id);
        }
    }
}

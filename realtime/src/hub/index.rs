//! Who gets a message: the users an [`Audience`] names on this instance, from the session index
//! (by user, and by role and topic for those with a session here).

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{Audience, State};

impl State {
    /// The users `audience` names on this instance (each once).
    pub(super) fn recipients(&self, audience: &Audience) -> Vec<Uuid> {
        match audience {
            Audience::User(id) => vec![*id],
            Audience::Users(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            Audience::Role(role) => self
                .by_role
                .get(role)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
            Audience::RoleExcept(role, except) => self
                .by_role
                .get(role)
                .map(|ids| {
                    ids.iter()
                        .copied()
                        .filter(|id| !except.contains(id))
                        .collect()
                })
                .unwrap_or_default(),
            Audience::Topic(topic) => self
                .by_topic
                .get(topic)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
        }
    }
}

pub(super) fn remove_from_index<K, Q>(index: &mut HashMap<K, HashSet<Uuid>>, key: &Q, user: Uuid)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(members) = index.get_mut(key) {
        members.remove(&user);
        if members.is_empty() {
            index.remove(key);
        }
    }
}

//! Volunteers: duty, positions, eligibility, the coordinators' map, and keeping this instance's
//! matcher current (rebuilt from PostGIS at start, caught up on other instances' changes).

use chrono::{DateTime, Utc};
use kreki_auth::{CurrentUser, Role};
use uuid::Uuid;

use super::DispatchService;
use crate::domain::AlertKind;
use crate::error::{DispatchError, DispatchResult};
use crate::geo::LatLng;
use crate::history::Sample;
use crate::index::{Advance, Synced, VolunteerFacts};
use crate::messages::Message;
use crate::notify::Audience;
use crate::positions::PositionWriter;
use crate::store;
use crate::views::Volunteer;

impl DispatchService {
    /// Replaces the matcher's contents with the on-duty volunteers stored in PostgreSQL.
    ///
    /// # Errors
    /// Database or certification-source failures.
    pub async fn rebuild_index(&self) -> anyhow::Result<()> {
        self.index.begin_rebuild();
        // Changes committed after this are caught up later (see `crate::sync`).
        let xmin = store::snapshot_xmin(&mut *self.pool.acquire().await?).await?;
        let volunteers = store::all_volunteers(&self.pool).await?;
        let mut certs = self.certs.all_valid().await?;
        let states: Vec<_> = volunteers
            .into_iter()
            .filter_map(|row| {
                let codes = certs.remove(&row.user_id).unwrap_or_default();
                VolunteerFacts::from_row(&row, &codes)
            })
            .collect();
        let count = states.len();
        let touched = self.index.finish_rebuild(states);
        {
            // Never move the cursor forward here: a catch-up may have applied newer changes to
            // the matcher this rebuild just replaced.
            let mut cursor = self.sync.state.lock().await;
            cursor.xmin = Some(cursor.xmin.map_or(xmin, |known| known.min(xmin)));
        }
        for id in touched {
            self.reload_volunteer(id).await?;
        }
        // Positions not written yet are newer than the rows just read.
        for (id, at, recorded_at) in self.positions.pending_positions() {
            self.index.advance_position(id, at, recorded_at);
        }
        tracing::info!(volunteers = count, "dispatch matcher rebuilt");
        Ok(())
    }

    /// Applies the volunteer changes committed since the last catch-up, by any instance (see
    /// [`crate::sync`]); answers how many rows it read. One statement per page of changes (usually
    /// one page): its snapshot's `xmin` is the next cursor. A call made while another runs waits
    /// for it and returns at once when that one started after this call did (its snapshot covers
    /// everything this call would see). Does nothing before the first rebuild.
    ///
    /// # Errors
    /// Database or certification-source failures (the cursor stays; the next call reads again).
    pub async fn catch_up_volunteers(&self) -> DispatchResult<usize> {
        let requested = std::time::Instant::now();
        // Waiting callers hold no connection: the one catching up may need more than one (the
        // certifications of volunteers new to this instance), and a pool full of waiters would
        // leave it none.
        let mut cursor = self.sync.state.lock().await;
        if cursor.started.is_some_and(|started| started >= requested) {
            return Ok(0);
        }
        let Some(since) = cursor.xmin else {
            return Ok(0);
        };
        let started = std::time::Instant::now();
        let mut conn = self.pool.acquire().await?;
        let (mut after_xid, mut after_user) = (since, Uuid::nil());
        // The first page's snapshot is the oldest: later pages may see more, never less, so its
        // xmin is a cursor that skips nothing.
        let mut xmin = None;
        let mut read = 0;
        let mut unknown = Vec::new();
        let mut changed_here = Vec::new();
        let mark = self.index.read_mark();
        loop {
            let page =
                store::volunteers_changed(&mut conn, after_xid, after_user, crate::sync::PAGE)
                    .await?;
            xmin.get_or_insert(page.xmin);
            let full = page.rows.len() as i64 >= crate::sync::PAGE;
            read += page.rows.len();
            for changed in page.rows {
                let key = (
                    changed.change_xid.parse().unwrap_or(after_xid),
                    changed.row.user_id,
                );
                if key > (after_xid, after_user) {
                    (after_xid, after_user) = key;
                }
                match self.index.sync_row(&changed.row, mark) {
                    Synced::Applied => {}
                    Synced::Unknown => unknown.push(changed.row),
                    Synced::ChangedHere => changed_here.push(changed.row.user_id),
                }
            }
            if !full {
                break;
            }
        }
        drop(conn);
        // Changed here after the page was read: the row read now holds that change and
        // anything committed before it.
        for id in changed_here {
            let mark = self.index.read_mark();
            if let Some(row) = store::volunteer(&self.pool, id).await?
                && self.index.sync_row(&row, mark) == Synced::Unknown
            {
                unknown.push(row);
            }
        }
        for row in unknown {
            let codes = self.certifications(row.user_id).await?;
            if let Some(state) = VolunteerFacts::from_row(&row, &codes) {
                self.index.upsert(state);
            }
        }
        cursor.xmin = xmin.or(cursor.xmin);
        cursor.started = Some(started);
        // Catch-ups run one at a time (this lock): none will apply a read older than `mark`.
        self.index.forget_marks(mark);
        metrics::counter!("kreki_dispatch_volunteer_catch_up_rows_total").increment(read as u64);
        Ok(read)
    }

    /// True when this instance's matcher holds `volunteer` (on duty with a position), whichever
    /// instance their changes went through: for diagnostics and tests.
    pub fn in_matcher(&self, volunteer: Uuid) -> bool {
        self.index.contains(volunteer)
    }

    /// When the position the matcher holds for `volunteer` was recorded (`None`: not in the
    /// matcher).
    pub fn matcher_position_at(&self, volunteer: Uuid) -> Option<DateTime<Utc>> {
        self.index.position_at(volunteer)
    }

    /// This instance's name in volunteer-change announcements.
    pub(crate) fn sync_instance(&self) -> Uuid {
        self.sync.instance
    }

    /// True (once) when this instance changed volunteers since the last call.
    pub(crate) fn take_volunteer_changes(&self) -> bool {
        self.sync
            .dirty
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// Puts volunteer `id` into the matcher as PostgreSQL has them (or takes them out).
    async fn reload_volunteer(&self, id: Uuid) -> DispatchResult<()> {
        let row = store::volunteer(&self.pool, id).await?;
        let state = match row.filter(|row| row.on_duty) {
            Some(row) => VolunteerFacts::from_row(&row, &self.certifications(id).await?),
            None => None,
        };
        match state {
            Some(state) => self.index.upsert(state),
            None => self.index.remove(id),
        }
        Ok(())
    }

    /// Samples dropped from the location history because its queue was full.
    pub fn history_dropped(&self) -> u64 {
        self.history.dropped()
    }

    /// Puts the volunteer on or off duty; answers the alert kinds they are eligible for.
    ///
    /// # Errors
    /// Database or certification-source failures.
    pub async fn set_duty(
        &self,
        volunteer: &CurrentUser,
        on_duty: bool,
    ) -> DispatchResult<Vec<AlertKind>> {
        let row = store::set_duty(&self.pool, volunteer.id.0, &volunteer.name, on_duty).await?;
        self.sync.changed();
        let codes = self.certifications(volunteer.id.0).await?;
        let kinds = self
            .eligible_kinds(&codes, row.practitioner_verified)
            .await?;
        if on_duty {
            if let Some(state) = VolunteerFacts::from_row(&row, &codes) {
                self.index.upsert(state);
            }
        } else {
            self.index.remove(volunteer.id.0);
        }
        Ok(kinds)
    }

    async fn certifications(&self, user: Uuid) -> DispatchResult<Vec<String>> {
        self.certs
            .valid_for(user)
            .await
            .map_err(|error| DispatchError::Internal(format!("certification source: {error:#}")))
    }

    async fn eligible_kinds(
        &self,
        codes: &[String],
        verified: bool,
    ) -> DispatchResult<Vec<AlertKind>> {
        Ok(store::kinds(&self.pool)
            .await?
            .into_iter()
            .filter(|(_, settings)| {
                (verified || !settings.requires_verified_practitioner)
                    && settings
                        .required_certifications
                        .iter()
                        .all(|code| codes.contains(code))
            })
            .map(|(kind, _)| kind)
            .collect())
    }

    /// Records a volunteer's position: PostgreSQL (latest), the matcher, and, while on duty, the
    /// history queue and a `volunteer.position` message to coordinators. Used by HTTP and by
    /// WebSocket `location` frames. A position recorded before the stored one is kept in history
    /// only.
    ///
    /// # Errors
    /// Database failures.
    pub async fn update_location(
        &self,
        volunteer: Uuid,
        name: &str,
        at: LatLng,
        accuracy_m: Option<f32>,
        recorded_at: Option<DateTime<Utc>>,
    ) -> DispatchResult<()> {
        let now = Utc::now();
        // A device clock ahead of ours must not make a position look fresher than it is.
        let recorded_at = recorded_at.map_or(now, |at| at.min(now));
        let sample = Sample {
            volunteer_id: volunteer,
            at,
            accuracy_m,
            recorded_at,
        };
        match self.index.advance_position(volunteer, at, recorded_at) {
            // On duty and located: the matcher has it now, the table within a flush interval
            // (`crate::positions`).
            Advance::Moved => {
                self.positions
                    .submit(volunteer, name, at, accuracy_m, recorded_at)
                    .await?;
                self.history.push(sample);
                self.publish_position(volunteer, at, accuracy_m, recorded_at);
                self.publish_to_team(volunteer, at).await;
                return Ok(());
            }
            // Older than what the matcher holds: history only.
            Advance::Older => {
                self.history.push(sample);
                return Ok(());
            }
            Advance::Unknown => {}
        }
        // Off duty, or the first position since going on duty: the row decides (and is created
        // when new), synchronously.
        let stored =
            store::set_position(&self.pool, volunteer, name, at, accuracy_m, recorded_at).await?;
        if stored.latest {
            self.sync.changed();
        }
        if stored.latest && !self.index.update_position(volunteer, at, recorded_at) {
            // Not in the matcher yet (first position since going on duty, or off duty).
            self.reload_volunteer(volunteer).await?;
        }
        // Off duty, a volunteer's whereabouts are nobody's business: only the latest position is
        // kept (for going on duty), neither history nor the coordinators' map.
        if stored.on_duty {
            self.history.push(sample);
            if stored.latest {
                self.publish_position(volunteer, at, accuracy_m, recorded_at);
                self.publish_to_team(volunteer, at).await;
            }
        }
        Ok(())
    }

    /// Shows an on-duty volunteer's new position on the coordinators' map.
    fn publish_position(
        &self,
        volunteer: Uuid,
        at: LatLng,
        accuracy_m: Option<f32>,
        recorded_at: DateTime<Utc>,
    ) {
        self.notifier.publish(
            &[Audience::Role(Role::Coordinator)],
            &Message::VolunteerPosition {
                volunteer_id: volunteer,
                lat: at.lat(),
                lng: at.lng(),
                accuracy_m,
                recorded_at,
            },
        );
    }

    /// Writes the positions waiting in the write-behind map now ([`crate::positions::run`] does
    /// every `position_flush_interval_ms`; shutdown and tests call it too) and announces them to
    /// other instances; answers how many volunteers were written.
    ///
    /// # Errors
    /// Database failures (the positions stay queued for the next flush).
    pub async fn flush_positions(&self) -> DispatchResult<usize> {
        let written = self.positions.flush(&self.pool).await?;
        if written > 0 {
            self.sync.changed();
        }
        Ok(written)
    }

    /// The write-behind position map (its counters, for tests and benchmarks).
    pub fn position_writer(&self) -> &PositionWriter {
        &self.positions
    }

    /// Volunteers for the coordinators' map (at most 2000).
    ///
    /// # Errors
    /// Database failures.
    pub async fn list_volunteers(&self, bbox: Option<[f64; 4]>) -> DispatchResult<Vec<Volunteer>> {
        Ok(store::volunteers_in_box(&self.pool, bbox, 2000)
            .await?
            .into_iter()
            .map(Volunteer::from)
            .collect())
    }

    /// Re-reads `user`'s certifications and updates the matcher at once (the LMS calls this when a
    /// certificate is issued, expires or is revoked).
    ///
    /// # Errors
    /// Certification-source failures.
    pub async fn eligibility_changed(&self, user: Uuid) -> DispatchResult<()> {
        let codes = self.certifications(user).await?;
        self.index.set_certifications(user, &codes);
        Ok(())
    }

    /// Stores whether `user` is a verified health practitioner and updates the matcher. The
    /// SATUSEHAT bridge (issue 5) calls this after it checked the volunteer's NIK; kinds with
    /// `requires_verified_practitioner` are offered only to verified volunteers.
    ///
    /// # Errors
    /// Database failures.
    pub async fn set_practitioner_verified(
        &self,
        user: Uuid,
        verified: bool,
    ) -> DispatchResult<()> {
        store::set_practitioner_verified(&self.pool, user, verified).await?;
        self.sync.changed();
        self.index.set_verified_practitioner(user, verified);
        Ok(())
    }
}

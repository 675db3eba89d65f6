//! The production bus: Redis Streams.
//!
//! Each topic (see [`super::topic_of`]) is spread over `partitions` streams
//! (`{ns}:events:{topic}:{p}`), the partition chosen by a stable hash of the aggregate id, so
//! each aggregate's events stay in one stream, in order. Each consuming context is a consumer
//! group on every partition of the topics it reads, and never sees the others. A consumer
//! reads only the partitions it holds a lease on (`{ns}:lease:{group}:{p}`, renewed while it
//! lives), so one aggregate's events are never handled by two replicas at once. Entries are
//! acknowledged (`XACK`) only when the consumer settles them, after its transaction committed;
//! acknowledgements waiting at the same time go out together. A consumer that takes over a
//! partition first claims (`XAUTOCLAIM`) what the previous holder left pending, so nothing a
//! dead consumer read is lost. Dead letters go to `{ns}:dead:{group}`.
//!
//! Each entry carries the event's type beside the envelope (`type`, `event`): a group reads
//! every type of its topics, and acknowledges the types it does not handle without parsing
//! them or handing them over. A group that [lingers](super::bus::Member::linger) waits half
//! that long after a read before the next, so that under load one read brings many entries
//! rather than one wake-up per entry.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use tokio::sync::{mpsc, oneshot};

use super::bus::{Delivery, EventBus, Member, Settle};
use super::{EventEnvelope, topic_of};

/// Settings of the Redis Streams bus.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prefix of every key the bus uses.
    pub namespace: String,
    /// Streams events are spread over (by aggregate).
    pub partitions: u32,
    /// How long a consumer's hold on a partition lasts without renewal: a dead consumer's
    /// partitions move to another consumer after this long.
    pub lease: Duration,
    /// Entries kept per stream (approximately; older ones are trimmed).
    pub max_len: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            namespace: "better-store".into(),
            partitions: 8,
            lease: Duration::from_secs(10),
            max_len: 1_000_000,
        }
    }
}

/// Redis Streams behind [`EventBus`].
#[derive(Clone)]
pub struct RedisStreamsBus {
    client: redis::Client,
    conn: MultiplexedConnection,
    options: Arc<RedisOptions>,
}

/// Stable FNV-1a: the partition of an aggregate must not change between builds or replicas.
fn partition_of(aggregate_id: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in aggregate_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

/// The longest a blocking read waits before the reader looks at its leases again.
const BLOCK_MS: usize = 1000;

/// Most entries one read of new entries brings.
const READ_COUNT: usize = 100;

/// What a reader hands over and how: the group's types, and how long it lingers.
struct Reading {
    group: String,
    consumer: String,
    topics: Arc<[String]>,
    events: HashSet<String>,
    linger: Duration,
}

impl RedisStreamsBus {
    /// Connects to the Redis at `url`.
    pub async fn connect(url: &str, options: RedisOptions) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = client.get_multiplexed_async_connection().await?;
        Ok(Self { client, conn, options: Arc::new(options) })
    }

    fn stream(&self, topic: &str, partition: u32) -> String {
        format!("{}:events:{topic}:{partition}", self.options.namespace)
    }

    /// The streams of `partitions` of every topic in `topics`.
    fn streams(&self, topics: &[String], partitions: &[u32]) -> Vec<String> {
        let mut streams = Vec::with_capacity(topics.len() * partitions.len());
        for partition in partitions {
            for topic in topics {
                streams.push(self.stream(topic, *partition));
            }
        }
        streams
    }

    fn lease_key(&self, group: &str, partition: u32) -> String {
        format!("{}:lease:{group}:{partition}", self.options.namespace)
    }

    fn dead_key(&self, group: &str) -> String {
        format!("{}:dead:{group}", self.options.namespace)
    }

    async fn reader(&self) -> anyhow::Result<MultiplexedConnection> {
        // Blocking reads need a connection of their own, with room for the block.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_millis(BLOCK_MS as u64 * 5)));
        Ok(self.client.get_multiplexed_async_connection_with_config(&config).await?)
    }

    async fn create_groups(&self, group: &str, topics: &[String]) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        for topic in topics {
            for partition in 0..self.options.partitions {
                // From the start of the stream: a context deployed after events were published
                // still gets them.
                let created: redis::RedisResult<()> =
                    conn.xgroup_create_mkstream(self.stream(topic, partition), group, "0").await;
                if let Err(error) = created
                    && error.code() != Some("BUSYGROUP")
                {
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// One pass over the partitions: takes free ones, renews held ones, drops lost ones.
    /// Newly taken partitions are reported in `taken` so the reader claims their pending
    /// entries first.
    async fn lease_round(&self, group: &str, consumer: &str, held: &Mutex<Leases>) {
        let renew = redis::Script::new(
            "if redis.call('get', KEYS[1]) == ARGV[1] then \
               return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end",
        );
        let lease_ms = self.options.lease.as_millis() as u64;
        let mut conn = self.conn.clone();
        for partition in 0..self.options.partitions {
            let key = self.lease_key(group, partition);
            let holding = held.lock().unwrap_or_else(|p| p.into_inner()).held.contains(&partition);
            let result: redis::RedisResult<bool> = if holding {
                renew.key(&key).arg(consumer).arg(lease_ms).invoke_async(&mut conn).await
            } else {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(consumer)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query_async::<Option<String>>(&mut conn)
                    .await
                    .map(|ok| ok.is_some())
            };
            let mut leases = held.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(true) if !holding => {
                    leases.held.insert(partition);
                    leases.taken.insert(partition);
                }
                Ok(false) if holding => {
                    tracing::warn!(%group, partition, "lost the lease on a partition");
                    leases.held.remove(&partition);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%group, partition, %error, "lease update failed"),
            }
        }
    }

    /// Keeps this consumer's leases (a [`Self::lease_round`] every third of the lease) until
    /// `stop`, then gives them back.
    async fn keep_leases(
        self,
        group: String,
        consumer: String,
        held: Arc<Mutex<Leases>>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut stop = stop;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.options.lease / 3) => {}
                _ = stop.changed() => break,
            }
            self.lease_round(&group, &consumer, &held).await;
        }
        let release = redis::Script::new(
            "if redis.call('get', KEYS[1]) == ARGV[1] then \
               return redis.call('del', KEYS[1]) else return 0 end",
        );
        let mut conn = self.conn.clone();
        let partitions: Vec<u32> =
            held.lock().unwrap_or_else(|p| p.into_inner()).held.drain().collect();
        for partition in partitions {
            let key = self.lease_key(&group, partition);
            let _: redis::RedisResult<i64> =
                release.key(&key).arg(&consumer).invoke_async(&mut conn).await;
        }
    }

    /// Reads the held partitions of the member's topics and hands entries of its types to
    /// the consumer, one at a time.
    async fn read(
        self,
        reading: Arc<Reading>,
        held: Arc<Mutex<Leases>>,
        acker: Acker,
        out: mpsc::Sender<Delivery>,
    ) -> anyhow::Result<()> {
        let Reading { group, consumer, topics, .. } = &*reading;
        let mut reader = self.reader().await?;
        loop {
            if out.is_closed() {
                return Ok(());
            }
            let (partitions, taken) = {
                let mut leases = held.lock().unwrap_or_else(|p| p.into_inner());
                let taken: Vec<u32> = leases.taken.drain().collect();
                let mut partitions: Vec<u32> = leases.held.iter().copied().collect();
                partitions.sort_unstable();
                (partitions, taken)
            };
            let claimed = self.streams(topics, &taken);
            for stream in claimed {
                // What the previous holder read but never settled comes first, in order.
                let mut start = "0-0".to_string();
                loop {
                    let reply: StreamAutoClaimReply = reader
                        .xautoclaim_options(
                            &stream,
                            group,
                            consumer,
                            0,
                            &start,
                            StreamAutoClaimOptions::default().count(100),
                        )
                        .await?;
                    start = reply.next_stream_id;
                    if start == "0-0" {
                        break;
                    }
                }
                let options = StreamReadOptions::default().group(group, consumer).count(1000);
                let pending: Option<StreamReadReply> =
                    reader.xread_options(&[&stream], &["0"], &options).await?;
                for entry in pending.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    if !self.hand_over(&reading, &stream, entry, 1, &acker, &out).await {
                        return Ok(());
                    }
                }
            }
            if partitions.is_empty() {
                // Another consumer holds every partition: wait for a lease to come free.
                tokio::select! {
                    _ = tokio::time::sleep(self.options.lease / 3) => {}
                    _ = out.closed() => return Ok(()),
                }
                continue;
            }
            let streams = self.streams(topics, &partitions);
            let ids: Vec<&str> = streams.iter().map(|_| ">").collect();
            let options = StreamReadOptions::default()
                .group(group, consumer)
                .count(READ_COUNT)
                .block(BLOCK_MS);
            let reply: Option<StreamReadReply> =
                reader.xread_options(&streams, &ids, &options).await?;
            let mut read = 0;
            for key in reply.into_iter().flat_map(|r| r.keys) {
                for entry in key.ids {
                    read += 1;
                    if !self.hand_over(&reading, &key.key, entry, 0, &acker, &out).await {
                        return Ok(());
                    }
                }
            }
            // A read that brought something, but less than it could have: the entries come
            // one by one, so let them gather (a full read means more already wait). Half the
            // linger: what the next read brings still joins the batch the consumer is
            // gathering for the full linger since the first entry of this read.
            if read > 0 && read < READ_COUNT && !reading.linger.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(reading.linger / 2) => {}
                    _ = out.closed() => return Ok(()),
                }
            }
        }
    }

    /// Sends one entry to the consumer, or acknowledges it at once when its type is not one
    /// the group handles; false once the consumer is gone.
    async fn hand_over(
        &self,
        reading: &Reading,
        stream: &str,
        entry: StreamId,
        redeliveries: u32,
        acker: &Acker,
        out: &mpsc::Sender<Delivery>,
    ) -> bool {
        // Entries written before the type went beside the envelope have none: the consumer
        // judges those after parsing.
        let kind: Option<String> = entry.get("type");
        if kind.is_some_and(|kind| !reading.events.contains(&kind)) {
            // Nothing waits on this acknowledgement: it goes out with the next batch, and if
            // it is lost the entry comes again and is acknowledged again.
            acker.send(stream.to_string(), entry.id, None);
            return true;
        }
        let settle = RedisSettle {
            conn: self.conn.clone(),
            acker: acker.clone(),
            stream: stream.to_string(),
            group: reading.group.clone(),
            id: entry.id.clone(),
            dead: self.dead_key(&reading.group),
        };
        let text: Option<String> = entry.get("event");
        let event = match text.as_deref().map(serde_json::from_str::<EventEnvelope>) {
            Some(Ok(event)) => event,
            _ => {
                // Not ours to read: set it aside rather than block the partition.
                let reason = "entry is not an event envelope".to_string();
                tracing::error!(%stream, id = %entry.id, "{reason}");
                if let Err(error) = Box::new(settle).park(text.unwrap_or_default(), reason).await {
                    tracing::error!(%error, "dead-lettering an unreadable entry failed");
                }
                return true;
            }
        };
        let redeliveries =
            entry.delivered_count.map_or(redeliveries, |n| n.saturating_sub(1) as u32);
        out.send(Delivery::new(event, redeliveries, Box::new(settle))).await.is_ok()
    }
}

/// Most acknowledgements sent in one pipeline.
const ACK_BATCH: usize = 512;

/// How long acknowledgements that nobody waits on (entries of types the group skips) may
/// wait to go out with others.
const SKIPPED_ACK_WAIT: Duration = Duration::from_millis(100);

/// One acknowledgement waiting to go out, and who waits for it to be done, if anyone.
struct AckRequest {
    stream: String,
    id: String,
    done: Option<oneshot::Sender<anyhow::Result<()>>>,
}

/// Sends a consumer's acknowledgements. Lanes settle side by side; whatever is waiting when
/// the last `XACK` returns goes out in one pipeline (one `XACK` per stream), so a busy consumer
/// pays one round trip for many entries and an idle one still acknowledges at once what it
/// handled. Entries it skipped wait up to [`SKIPPED_ACK_WAIT`] for company.
#[derive(Clone)]
struct Acker(mpsc::UnboundedSender<AckRequest>);

impl Acker {
    /// Starts the acknowledger of `group`; it stops when the last handle is dropped.
    fn spawn(mut conn: MultiplexedConnection, group: String) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<AckRequest>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, ACK_BATCH).await > 0 {
                if batch.iter().all(|request| request.done.is_none()) {
                    // Entries of types the group skips: nobody waits on these, so they wait
                    // for company (more of them, or one someone waits on) rather than each
                    // costing Redis a round trip and a wake-up of its own.
                    let until = tokio::time::Instant::now() + SKIPPED_ACK_WAIT;
                    while batch.len() < ACK_BATCH && batch.iter().all(|r| r.done.is_none()) {
                        let room = ACK_BATCH - batch.len();
                        match tokio::time::timeout_at(until, rx.recv_many(&mut batch, room)).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                    }
                }
                let mut by_stream: HashMap<&str, Vec<&str>> = HashMap::new();
                for request in &batch {
                    by_stream.entry(&request.stream).or_default().push(&request.id);
                }
                let mut pipe = redis::pipe();
                for (stream, ids) in &by_stream {
                    pipe.xack(*stream, &group, ids).ignore();
                }
                let sent: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
                if let Err(error) = &sent
                    && batch.iter().any(|request| request.done.is_none())
                {
                    // Skipped entries have no one to tell: they come again after a reconnect
                    // and are acknowledged then.
                    tracing::warn!(%group, %error, "acknowledging skipped entries failed");
                }
                for request in batch.drain(..) {
                    let answer = match &sent {
                        Ok(()) => Ok(()),
                        Err(error) => Err(anyhow::anyhow!("acknowledging failed: {error}")),
                    };
                    if let Some(done) = request.done {
                        let _ = done.send(answer);
                    }
                }
            }
        });
        Self(tx)
    }

    /// Queues the acknowledgement of `id` in `stream`; `done` hears how it went.
    fn send(
        &self,
        stream: String,
        id: String,
        done: Option<oneshot::Sender<anyhow::Result<()>>>,
    ) -> bool {
        self.0.send(AckRequest { stream, id, done }).is_ok()
    }
}

/// The partitions a consumer holds, and those it has just taken.
#[derive(Default)]
struct Leases {
    held: HashSet<u32>,
    taken: HashSet<u32>,
}

struct RedisSettle {
    conn: MultiplexedConnection,
    acker: Acker,
    stream: String,
    group: String,
    id: String,
    dead: String,
}

impl RedisSettle {
    async fn park(self: Box<Self>, event: String, reason: String) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let fields = [("event", event), ("reason", reason), ("from", self.stream.clone())];
        let _: String = conn.xadd(&self.dead, "*", &fields).await?;
        let _: i64 = conn.xack(&self.stream, &self.group, &[&self.id]).await?;
        Ok(())
    }
}

impl Settle for RedisSettle {
    fn ack(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            let (done, acked) = oneshot::channel();
            if !self.acker.send(self.stream, self.id, Some(done)) {
                anyhow::bail!("the acknowledger stopped");
            }
            acked.await.map_err(|_| anyhow::anyhow!("the acknowledger stopped"))?
        })
    }

    fn dead_letter(self: Box<Self>, reason: String) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let entry: Vec<(String, Vec<(String, String)>)> =
                conn.xrange(&self.stream, &self.id, &self.id).await?;
            let event = entry
                .into_iter()
                .next()
                .and_then(|(_, fields)| fields.into_iter().find(|(k, _)| k == "event"))
                .map(|(_, v)| v)
                .unwrap_or_default();
            tracing::error!(stream = %self.stream, id = %self.id, %reason, "event dead-lettered");
            self.park(event, reason).await
        })
    }
}

impl EventBus for RedisStreamsBus {
    fn publish<'a>(&'a self, event: &'a EventEnvelope) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            match self.publish_all(std::slice::from_ref(event)).await {
                (_, Some(error)) => Err(error),
                _ => Ok(()),
            }
        })
    }

    fn publish_all<'a>(
        &'a self,
        events: &'a [EventEnvelope],
    ) -> BoxFuture<'a, (usize, Option<anyhow::Error>)> {
        Box::pin(async move {
            // Redis refuses an empty pipeline ("empty command"); nothing to send is no failure.
            if events.is_empty() {
                return (0, None);
            }
            // One pipeline, in order, on one connection: the entries land in their streams in
            // the order given. When it fails, none counts as sent (some may have been; the
            // relay sends them again and inboxes drop the duplicates).
            let mut pipe = redis::pipe();
            for event in events {
                let stream = self.stream(
                    topic_of(&event.event_type),
                    partition_of(&event.aggregate_id, self.options.partitions),
                );
                let json = match serde_json::to_string(event) {
                    Ok(json) => json,
                    Err(error) => return (0, Some(error.into())),
                };
                pipe.xadd_maxlen(
                    stream,
                    redis::streams::StreamMaxlen::Approx(self.options.max_len),
                    "*",
                    &[("type", event.event_type.as_str()), ("event", json.as_str())],
                )
                .ignore();
            }
            let mut conn = self.conn.clone();
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => (events.len(), None),
                Err(error) => (0, Some(error.into())),
            }
        })
    }

    fn subscribe(&self, name: &str, topics: &[&str]) -> BoxStream<'static, EventEnvelope> {
        let (tx, rx) = mpsc::channel(256);
        let bus = self.clone();
        let name = name.to_string();
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        // Entry ids are Redis server milliseconds: start a second back so that clock skew
        // between here and the server does not hide events published right after this call.
        let since = chrono::Utc::now().timestamp_millis().saturating_sub(1000).max(0);
        tokio::spawn(async move {
            let mut reader = match bus.reader().await {
                Ok(reader) => reader,
                Err(error) => {
                    tracing::error!(%name, %error, "event watcher could not connect");
                    return;
                }
            };
            let partitions: Vec<u32> = (0..bus.options.partitions).collect();
            let streams = bus.streams(&topics, &partitions);
            let mut last: Vec<String> = streams.iter().map(|_| format!("{since}-0")).collect();
            let options = StreamReadOptions::default().count(100).block(BLOCK_MS);
            loop {
                let reply: redis::RedisResult<Option<StreamReadReply>> =
                    reader.xread_options(&streams, &last, &options).await;
                let reply = match reply {
                    Ok(reply) => reply,
                    Err(error) => {
                        tracing::warn!(%name, %error, "event watcher read failed");
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                for key in reply.into_iter().flat_map(|r| r.keys) {
                    let Some(position) = streams.iter().position(|s| *s == key.key) else {
                        continue;
                    };
                    for entry in key.ids {
                        last[position] = entry.id.clone();
                        let text: Option<String> = entry.get("event");
                        if let Some(Ok(event)) = text.as_deref().map(serde_json::from_str)
                            && tx.send(event).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Box::pin(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        ))
    }

    fn consume(&self, member: Member<'_>) -> BoxStream<'static, Delivery> {
        // One delivery at a time: the reader does not run ahead of the consumer.
        let (tx, rx) = mpsc::channel(1);
        let bus = self.clone();
        let reading = Arc::new(Reading {
            group: member.group.to_string(),
            consumer: member.consumer.to_string(),
            topics: member.topics().iter().map(|t| t.to_string()).collect(),
            events: member.events.iter().map(|t| t.to_string()).collect(),
            linger: member.linger,
        });
        let (group, consumer) = (reading.group.clone(), reading.consumer.clone());
        tokio::spawn(async move {
            if let Err(error) = bus.create_groups(&group, &reading.topics).await {
                tracing::error!(%group, %error, "creating the consumer group failed");
                return;
            }
            let held = Arc::new(Mutex::new(Leases::default()));
            // The first round before the first read: a reader that found no partition held
            // would wait a third of a lease before looking again, and so would the events.
            bus.lease_round(&group, &consumer, &held).await;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let leases = tokio::spawn(bus.clone().keep_leases(
                group.clone(),
                consumer.clone(),
                held.clone(),
                stopped,
            ));
            let acker = Acker::spawn(bus.conn.clone(), group.clone());
            loop {
                let read =
                    bus.clone().read(reading.clone(), held.clone(), acker.clone(), tx.clone());
                match read.await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(%group, %error, "reading events failed; reconnecting");
                        if tx.is_closed() {
                            break;
                        }
                        // What was read and not settled is claimed again on reconnect.
                        held.lock().unwrap_or_else(|p| p.into_inner()).taken =
                            held.lock().unwrap_or_else(|p| p.into_inner()).held.clone();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            let _ = stop.send(true);
            let _ = leases.await;
        });
        Box::pin(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|d| (d, rx)) },
        ))
    }

    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(EventEnvelope, String)>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let entries: Vec<(String, Vec<(String, String)>)> =
                conn.xrange_all(self.dead_key(group)).await?;
            Ok(entries
                .into_iter()
                .filter_map(|(_, fields)| {
                    let field =
                        |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                    let event = serde_json::from_str(&field("event")?).ok()?;
                    Some((event, field("reason").unwrap_or_default()))
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::partition_of;

    #[test]
    fn an_aggregate_always_lands_in_the_same_partition() {
        assert_eq!(partition_of("order-1", 8), partition_of("order-1", 8));
        assert!(partition_of("order-1", 8) < 8);
        // Fixed values: a change here would reorder events across a rolling deploy.
        assert_eq!(partition_of("", 8), 0x811c_9dc5 % 8);
        assert_eq!(partition_of("a", 1), 0);
    }
}

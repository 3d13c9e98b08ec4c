//! The projections as Arrow tables: the schemas of `deployments`,
//! `changes` and `incidents` (SPEC §4) and their rows from a [`Projected`].

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, IntervalMonthDayNanoBuilder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use leadline_udfs::nanos_to_interval;

use super::Projected;
use crate::event::{UTC, change_ids_item};

/// The projections that are tables of rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Table {
    Deployments,
    Changes,
    Incidents,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Deployments => "deployments",
            Table::Changes => "changes",
            Table::Incidents => "incidents",
        }
    }

    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Deployments => deployments_schema(),
            Table::Changes => changes_schema(),
            Table::Incidents => incidents_schema(),
        }
    }
}

/// The rows of `table` in `p`.
pub fn table_batch(table: Table, p: &Projected) -> arrow::error::Result<RecordBatch> {
    match table {
        Table::Deployments => deployments_batch(p),
        Table::Changes => changes_batch(p),
        Table::Incidents => incidents_batch(p),
    }
}

fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())), nullable)
}

fn interval_field(name: &str) -> Field {
    Field::new(name, DataType::Interval(IntervalUnit::MonthDayNano), true)
}

fn deployments_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("deployment_id", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, false),
            ts_field("started_at", true),
            ts_field("finished_at", true),
            Field::new("status", DataType::Utf8, false),
            Field::new("commit_sha", DataType::Utf8, true),
            Field::new("change_ids", DataType::List(change_ids_item()), true),
            Field::new("rolled_back", DataType::Boolean, false),
            Field::new("failed", DataType::Boolean, true),
            interval_field("recovery_time"),
            Field::new("rework", DataType::Boolean, true),
            Field::new("remediates", DataType::Utf8, true),
            Field::new("team", DataType::Utf8, true),
        ]))
    });
    S.clone()
}

fn changes_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("commit_sha", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, false),
            ts_field("committed_at", true),
            Field::new("deployment_id", DataType::Utf8, false),
            ts_field("deployed_at", false),
            interval_field("lead_time"),
            Field::new("team", DataType::Utf8, true),
        ]))
    });
    S.clone()
}

fn incidents_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("incident_id", DataType::Utf8, false),
            Field::new("service", DataType::Utf8, false),
            Field::new("environment", DataType::Utf8, false),
            ts_field("opened_at", false),
            ts_field("resolved_at", true),
            interval_field("restore_time"),
            Field::new("deployment_id", DataType::Utf8, true),
            Field::new("attribution", DataType::Utf8, true),
            Field::new("team", DataType::Utf8, true),
        ]))
    });
    S.clone()
}

fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone(UTC)
}

fn micros_interval(us: Option<i64>) -> Option<arrow::datatypes::IntervalMonthDayNano> {
    us.map(|u| nanos_to_interval(u.saturating_mul(1000)))
}

fn deployments_batch(p: &Projected) -> arrow::error::Result<RecordBatch> {
    let (mut id, mut svc, mut env, mut started, mut finished, mut status, mut sha) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        ts(),
        ts(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut changes = ListBuilder::new(StringBuilder::new()).with_field(change_ids_item());
    let (mut rolled, mut failed, mut recovery, mut rework, mut remediates, mut team) = (
        BooleanBuilder::new(),
        BooleanBuilder::new(),
        IntervalMonthDayNanoBuilder::new(),
        BooleanBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for d in &p.deployments {
        id.append_value(&d.deployment_id);
        svc.append_value(&d.service);
        env.append_value(&d.environment);
        started.append_option(d.started_at);
        finished.append_option(d.finished_at);
        status.append_value(d.status.as_str());
        sha.append_option(d.commit_sha.as_deref());
        match &d.change_ids {
            Some(ids) => {
                ids.iter().for_each(|i| changes.values().append_value(i));
                changes.append(true);
            }
            None => changes.append(false),
        }
        rolled.append_value(d.rolled_back);
        failed.append_option(d.failed);
        recovery.append_option(micros_interval(d.recovery_time));
        rework.append_option(d.rework);
        remediates.append_option(d.remediates.as_deref());
        team.append_option(d.team.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(svc.finish()),
        Arc::new(env.finish()),
        Arc::new(started.finish()),
        Arc::new(finished.finish()),
        Arc::new(status.finish()),
        Arc::new(sha.finish()),
        Arc::new(changes.finish()),
        Arc::new(rolled.finish()),
        Arc::new(failed.finish()),
        Arc::new(recovery.finish()),
        Arc::new(rework.finish()),
        Arc::new(remediates.finish()),
        Arc::new(team.finish()),
    ];
    RecordBatch::try_new(deployments_schema(), columns)
}

fn changes_batch(p: &Projected) -> arrow::error::Result<RecordBatch> {
    let (mut sha, mut svc, mut env, mut committed, mut dep, mut deployed, mut lead, mut team) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        ts(),
        StringBuilder::new(),
        ts(),
        IntervalMonthDayNanoBuilder::new(),
        StringBuilder::new(),
    );
    for c in &p.changes {
        sha.append_value(&c.commit_sha);
        svc.append_value(&c.service);
        env.append_value(&c.environment);
        committed.append_option(c.committed_at);
        dep.append_value(&c.deployment_id);
        deployed.append_value(c.deployed_at);
        // Negative lead times are excluded from every statistic: NULL here too.
        lead.append_option(micros_interval(c.lead_time()));
        team.append_option(c.team.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(sha.finish()),
        Arc::new(svc.finish()),
        Arc::new(env.finish()),
        Arc::new(committed.finish()),
        Arc::new(dep.finish()),
        Arc::new(deployed.finish()),
        Arc::new(lead.finish()),
        Arc::new(team.finish()),
    ];
    RecordBatch::try_new(changes_schema(), columns)
}

fn incidents_batch(p: &Projected) -> arrow::error::Result<RecordBatch> {
    let (mut id, mut svc, mut env, mut opened, mut resolved, mut restore, mut dep, mut attr, mut team) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        ts(),
        ts(),
        IntervalMonthDayNanoBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for i in &p.incidents {
        id.append_value(&i.incident_id);
        svc.append_value(&i.service);
        env.append_value(&i.environment);
        opened.append_value(i.opened_at);
        resolved.append_option(i.resolved_at);
        restore.append_option(micros_interval(i.restore_time()));
        dep.append_option(i.deployment_id.as_deref());
        attr.append_option(i.attribution.map(|a| a.as_str()));
        team.append_option(i.team.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(svc.finish()),
        Arc::new(env.finish()),
        Arc::new(opened.finish()),
        Arc::new(resolved.finish()),
        Arc::new(restore.finish()),
        Arc::new(dep.finish()),
        Arc::new(attr.finish()),
        Arc::new(team.finish()),
    ];
    RecordBatch::try_new(incidents_schema(), columns)
}

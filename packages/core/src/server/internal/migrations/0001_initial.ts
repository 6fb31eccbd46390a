/**
 * Migration 1: the walking skeleton's tables.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/** Users, targets, workers, jobs with tasks, output rules, files, outputs, events, tags and times. */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE user (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    time_create TEXT NOT NULL
  )`
  yield* sql`CREATE TABLE user_privilege (
    user TEXT NOT NULL REFERENCES user (id),
    privilege TEXT NOT NULL,
    PRIMARY KEY (user, privilege)
  )`
  yield* sql`CREATE TABLE target (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    desc TEXT NOT NULL,
    redirect TEXT,
    privilege TEXT
  )`
  yield* sql`CREATE TABLE worker (
    id TEXT PRIMARY KEY,
    bootstrap_hash TEXT NOT NULL UNIQUE,
    token_hash TEXT UNIQUE,
    factory TEXT NOT NULL,
    factory_private TEXT,
    factory_ip TEXT,
    target TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    recycle INTEGER NOT NULL DEFAULT 0,
    lastping TEXT,
    time_create TEXT NOT NULL,
    hold_time TEXT,
    hold_reason TEXT
  )`
  yield* sql`CREATE INDEX worker_active ON worker (target) WHERE deleted = 0`
  yield* sql`CREATE TABLE job (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES user (id),
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    target_id TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    worker TEXT REFERENCES worker (id),
    waiting INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    time_archived TEXT,
    time_purged TEXT
  )`
  yield* sql`CREATE INDEX job_active ON job (id) WHERE complete = 0`
  yield* sql`CREATE INDEX job_owner ON job (owner, id)`
  yield* sql`CREATE UNIQUE INDEX job_worker ON job (worker) WHERE worker IS NOT NULL`
  yield* sql`CREATE TABLE task (
    job TEXT NOT NULL REFERENCES job (id),
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    script TEXT NOT NULL,
    env_clear INTEGER NOT NULL,
    env TEXT NOT NULL,
    user_id INTEGER,
    group_id INTEGER,
    workdir TEXT,
    complete INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job, seq)
  )`
  yield* sql`CREATE TABLE job_output_rule (
    job TEXT NOT NULL REFERENCES job (id),
    seq INTEGER NOT NULL,
    rule TEXT NOT NULL,
    ignore INTEGER NOT NULL,
    size_change_ok INTEGER NOT NULL,
    require_match INTEGER NOT NULL,
    PRIMARY KEY (job, seq)
  )`
  yield* sql`CREATE TABLE job_file (
    job TEXT NOT NULL REFERENCES job (id),
    id TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    time_archived TEXT,
    PRIMARY KEY (job, id)
  )`
  yield* sql`CREATE TABLE job_output (
    job TEXT NOT NULL,
    path TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (job, path),
    UNIQUE (job, id),
    FOREIGN KEY (job, id) REFERENCES job_file (job, id)
  )`
  yield* sql`CREATE TABLE job_event (
    job TEXT NOT NULL REFERENCES job (id),
    seq INTEGER NOT NULL,
    task INTEGER,
    stream TEXT NOT NULL,
    time TEXT NOT NULL,
    time_remote TEXT,
    payload TEXT NOT NULL,
    PRIMARY KEY (job, seq)
  ) WITHOUT ROWID`
  yield* sql`CREATE TABLE job_tag (
    job TEXT NOT NULL REFERENCES job (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (job, name)
  )`
  yield* sql`CREATE INDEX job_tag_lookup ON job_tag (name, value, job)`
  yield* sql`CREATE TABLE job_time (
    job TEXT NOT NULL REFERENCES job (id),
    name TEXT NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (job, name)
  )`
})

//! The state machine: replay, recovery from a lost worker, placement.

use regatta_common::{JobId, RequestId, Resources, StageId, WorkerId};

use crate::job_state::{JobStatus, TaskStatus};
use crate::{
    next_assignments, Command, DriverState, FailureClass, OutputStats, StageSpec, TaskKey,
    WorkerSpec,
};

fn stage(id: u64, tasks: u32, inputs: Vec<u64>, gpus: f64) -> StageSpec {
    StageSpec {
        stage: StageId(id),
        tasks,
        inputs: inputs.into_iter().map(StageId).collect(),
        output_partitions: 2,
        demand: Resources {
            cpus: 1.0,
            gpus,
            memory: 1 << 20,
        },
        plan: Vec::new(),
        task_inputs: Vec::new(),
    }
}

/// A job submission with no output, made now, under a fresh request id.
fn submit_job(job: JobId, name: &str, stages: Vec<StageSpec>) -> Command {
    Command::SubmitJob {
        submitted_unix_ms: 0,
        row_errors: Default::default(),
        job,
        name: name.into(),
        stages,
        output: None,
        request_id: RequestId::generate(),
    }
}

fn worker(id: u64, cpus: f64, gpus: f64) -> Command {
    Command::WorkerJoined {
        worker: WorkerId(id),
        spec: WorkerSpec {
            address: format!("127.0.0.1:{id}"),
            host: "127.0.0.1".into(),
            resources: Resources {
                cpus,
                gpus,
                memory: 1 << 30,
            },
            ..WorkerSpec::default()
        },
    }
}

/// Assigns everything placeable and finishes it, as a driver would.
fn run_round(s: &mut DriverState, log: &mut Vec<Command>) -> usize {
    let picks = next_assignments(s, 1000);
    for (task, w) in &picks {
        let c = Command::TaskAssigned {
            task: *task,
            worker: *w,
        };
        s.apply(&c).unwrap();
        log.push(c);
    }
    for (task, w) in &picks {
        let c = Command::TaskFinished {
            operators: Vec::new(),
            row_failures: Default::default(),
            task: *task,
            worker: *w,
            attempt: s.job(task.job).unwrap().stages[&task.stage].tasks[task.partition as usize]
                .launches,
            outputs: vec![OutputStats {
                partition: task.partition % 2,
                rows: 10,
                bytes: 100,
            }],
            spilled_bytes: 0,
            written: String::new(),
        };
        let _ = s.apply(&c);
        log.push(c);
    }
    picks.len()
}

#[test]
fn a_lost_worker_reruns_its_tasks_and_recomputes_needed_outputs_and_replays() {
    let mut s = DriverState::default();
    let mut log = vec![worker(1, 2.0, 0.0), worker(2, 2.0, 0.0)];
    log.push(submit_job(
        JobId(1),
        "j",
        vec![stage(1, 4, vec![], 0.0), stage(2, 2, vec![1], 0.0)],
    ));
    for c in &log {
        s.apply(c).unwrap();
    }
    // Stage 1 runs on both workers; stage 2 waits for it.
    assert_eq!(run_round(&mut s, &mut log), 4);
    let j = s.job(JobId(1)).unwrap();
    assert!(j.stages[&StageId(1)].is_done());
    // Worker 1 dies before stage 2 ran: its stage-1 outputs are still needed.
    let lost = Command::WorkerLost {
        worker: WorkerId(1),
        reason: "killed".into(),
    };
    s.apply(&lost).unwrap();
    log.push(lost);
    let j = s.job(JobId(1)).unwrap();
    assert_eq!(j.recomputed_outputs, 2, "two map outputs lived on worker 1");
    assert!(!j.stages[&StageId(1)].is_done());
    // They are recomputed on worker 2, then stage 2 runs, all on worker 2.
    while run_round(&mut s, &mut log) > 0 {}
    let j = s.job(JobId(1)).unwrap();
    assert!(j.results_ready());
    for st in j.stages.values() {
        for t in &st.tasks {
            assert!(matches!(t.status, TaskStatus::Done { worker, .. } if worker == WorkerId(2)));
        }
    }
    let done = Command::CompleteJob {
        job: JobId(1),
        rows: 20,
        finished_unix_ms: 1_000,
    };
    s.apply(&done).unwrap();
    log.push(done);
    assert_eq!(s.job(JobId(1)).unwrap().status, JobStatus::Succeeded);
    assert!(s.job(JobId(1)).unwrap().holds_results());
    // Its result partitions live on worker 2; losing it makes them again (and
    // the stage-1 outputs they read) on a new worker, the job still succeeded.
    for c in [
        worker(3, 2.0, 0.0),
        Command::WorkerLost {
            worker: WorkerId(2),
            reason: "killed".into(),
        },
    ] {
        s.apply(&c).unwrap();
        log.push(c);
    }
    let j = s.job(JobId(1)).unwrap();
    assert_eq!(j.status, JobStatus::Succeeded);
    assert!(!j.stages[&StageId(2)].is_done() && !j.stages[&StageId(1)].is_done());
    while run_round(&mut s, &mut log) > 0 {}
    let j = s.job(JobId(1)).unwrap();
    for st in j.stages.values() {
        assert!(st.is_done());
        for t in &st.tasks {
            assert!(matches!(t.status, TaskStatus::Done { worker, .. } if worker == WorkerId(3)));
        }
    }
    assert_eq!((j.status.clone(), j.rows_out), (JobStatus::Succeeded, 20));
    // Released results are not made again, and cannot be released twice.
    let release = Command::ReleaseResults {
        job: JobId(1),
        why: crate::Released::Deleted,
    };
    s.apply(&release).unwrap();
    log.push(release.clone());
    assert!(!s.job(JobId(1)).unwrap().holds_results());
    assert!(s.apply(&release).is_err());
    let lost = Command::WorkerLost {
        worker: WorkerId(3),
        reason: "killed".into(),
    };
    s.apply(&lost).unwrap();
    log.push(lost);
    assert!(s.job(JobId(1)).unwrap().stages[&StageId(2)].is_done());
    assert!(next_assignments(&s, 100).is_empty());
    // Replaying the log gives the same state.
    let mut replay = DriverState::default();
    for c in &log {
        let _ = replay.apply(c);
    }
    assert_eq!(replay, s);
}

#[test]
fn a_task_out_of_retries_fails_its_job_naming_task_worker_and_cause() {
    let mut s = DriverState::new(2);
    s.apply(&worker(1, 1.0, 0.0)).unwrap();
    s.apply(&submit_job(JobId(7), "j", vec![stage(1, 1, vec![], 0.0)]))
        .unwrap();
    let task = TaskKey {
        job: JobId(7),
        stage: StageId(1),
        partition: 0,
    };
    for attempt in 1..=2 {
        s.apply(&Command::TaskAssigned {
            task,
            worker: WorkerId(1),
        })
        .unwrap();
        s.apply(&Command::TaskFailed {
            task,
            worker: WorkerId(1),
            attempt,
            error: "disk full".into(),
            lost_input: None,
            class: FailureClass::Io,
        })
        .unwrap();
    }
    match &s.job(JobId(7)).unwrap().status {
        JobStatus::Failed(r) => {
            assert!(
                r.contains("job-7/stage-1/partition-0")
                    && r.contains("worker-1")
                    && r.contains("disk full"),
                "{r}"
            )
        }
        other => panic!("{other}"),
    }
    // Its resources are free again.
    assert_eq!(s.worker(WorkerId(1)).unwrap().used.cpus, 0.0);
}

#[test]
fn placement_respects_cpus_and_gpus() {
    let mut s = DriverState::default();
    s.apply(&worker(1, 2.0, 0.0)).unwrap();
    s.apply(&worker(2, 1.0, 1.0)).unwrap();
    s.apply(&submit_job(JobId(1), "gpu", vec![stage(1, 3, vec![], 1.0)]))
        .unwrap();
    // Only worker 2 has a GPU, and only one: one task now, none on worker 1.
    let picks = next_assignments(&s, 100);
    assert_eq!(picks.len(), 1);
    assert_eq!(picks[0].1, WorkerId(2));
    // CPU tasks fill the CPUs and no more.
    s.apply(&submit_job(
        JobId(2),
        "cpu",
        vec![stage(1, 10, vec![], 0.0)],
    ))
    .unwrap();
    // The GPU task takes worker 2's only CPU: CPU tasks fill worker 1's two.
    let picks = next_assignments(&s, 100);
    assert_eq!(picks.len(), 1 + 2, "{picks:?}");
    assert!(
        picks[1..].iter().all(|(_, w)| *w == WorkerId(1)),
        "{picks:?}"
    );
}

#[test]
fn a_worker_with_less_memory_than_a_task_share_runs_one_task_at_a_time() {
    let mut s = DriverState::default();
    s.apply(&Command::WorkerJoined {
        worker: WorkerId(1),
        spec: WorkerSpec {
            address: "127.0.0.1:1".into(),
            host: "127.0.0.1".into(),
            resources: Resources {
                cpus: 4.0,
                gpus: 0.0,
                memory: 1 << 19, // half a task's 1 MiB
            },
            ..WorkerSpec::default()
        },
    })
    .unwrap();
    s.apply(&submit_job(
        JobId(1),
        "small",
        vec![stage(1, 3, vec![], 0.0)],
    ))
    .unwrap();
    let picks = next_assignments(&s, 100);
    assert_eq!(picks.len(), 1, "{picks:?}");
    let c = Command::TaskAssigned {
        task: picks[0].0,
        worker: WorkerId(1),
    };
    s.apply(&c).unwrap();
    assert_eq!(s.worker(WorkerId(1)).unwrap().used.memory, 1 << 19);
    assert!(next_assignments(&s, 100).is_empty());
    let mut log = Vec::new();
    // Finishing it frees the worker for the next, until all three ran.
    s.apply(&Command::TaskFinished {
        operators: Vec::new(),
        row_failures: Default::default(),
        task: picks[0].0,
        worker: WorkerId(1),
        attempt: 1,
        outputs: vec![],
        spilled_bytes: 0,
        written: String::new(),
    })
    .unwrap();
    assert_eq!(s.worker(WorkerId(1)).unwrap().used.memory, 0);
    assert_eq!(run_round(&mut s, &mut log), 1);
    assert_eq!(run_round(&mut s, &mut log), 1);
    let tasks = &s.job(JobId(1)).unwrap().stages[&StageId(1)].tasks;
    assert!(
        tasks
            .iter()
            .all(|t| matches!(t.status, TaskStatus::Done { .. })),
        "{tasks:?}"
    );
}

#[test]
fn a_second_submission_with_the_same_request_id_is_refused_naming_the_first() {
    let mut s = DriverState::default();
    let id = |s: &str| {
        if s.is_empty() {
            RequestId::default()
        } else {
            RequestId::parse(s).unwrap()
        }
    };
    let submit = |job: u64, request_id: &str| Command::SubmitJob {
        submitted_unix_ms: 0,
        row_errors: Default::default(),
        job: JobId(job),
        name: "j".into(),
        stages: vec![stage(1, 1, vec![], 0.0)],
        output: None,
        request_id: id(request_id),
    };
    s.apply(&submit(1, "r-1")).unwrap();
    let err = s.apply(&submit(2, "r-1")).unwrap_err();
    assert!(
        matches!(&err, crate::Refusal::DuplicateRequest { job, .. } if *job == JobId(1)),
        "{err}"
    );
    assert!(s.job(JobId(2)).is_none(), "the refused job was recorded");
    assert_eq!(s.job_for_request(&id("r-1")), Some(JobId(1)));
    // Jobs replicated before every submission had a key never collide.
    s.apply(&submit(3, "")).unwrap();
    s.apply(&submit(4, "")).unwrap();
    assert_eq!(s.job_for_request(&id("")), None);
}

/// One job of one task reading `input`, on workers 1..=3.
fn poison_job(max_failures: u32) -> (DriverState, TaskKey) {
    let mut s = DriverState::new(max_failures);
    for w in 1..=3 {
        s.apply(&worker(w, 1.0, 0.0)).unwrap();
    }
    let mut spec = stage(1, 1, vec![], 0.0);
    spec.task_inputs = vec!["/data/crash.pdf".into()];
    s.apply(&submit_job(JobId(3), "j", vec![spec])).unwrap();
    let task = TaskKey {
        job: JobId(3),
        stage: StageId(1),
        partition: 0,
    };
    (s, task)
}

#[test]
fn a_task_whose_workers_die_under_it_fails_its_job_after_the_limit_naming_its_input() {
    let (mut s, task) = poison_job(2);
    for w in [1, 2] {
        let picks = next_assignments(&s, 10);
        assert_eq!(
            picks.len(),
            1,
            "the task is placed again after worker-{}",
            w - 1
        );
        let (t, on) = picks[0];
        assert_eq!(t, task);
        s.apply(&Command::TaskAssigned { task, worker: on })
            .unwrap();
        s.apply(&Command::WorkerLost {
            worker: on,
            reason: "the process died".into(),
        })
        .unwrap();
    }
    match &s.job(JobId(3)).unwrap().status {
        JobStatus::Failed(r) => assert!(
            r.contains("job-3/stage-1/partition-0")
                && r.contains("/data/crash.pdf")
                && r.contains("worker lost")
                && r.contains("the process died"),
            "{r}"
        ),
        other => panic!("still {other} after two workers died under it"),
    }
    assert!(
        next_assignments(&s, 10).is_empty(),
        "no third worker is offered it"
    );
    let alive = s.workers().filter(|(_, w)| w.alive).count();
    assert_eq!(alive, 1, "the worker it never reached stays");
}

#[test]
fn a_data_error_fails_the_job_at_once_and_an_io_error_is_retried() {
    for (class, fails_now) in [(FailureClass::Data, true), (FailureClass::Io, false)] {
        let (mut s, task) = poison_job(4);
        let (_, on) = next_assignments(&s, 10)[0];
        s.apply(&Command::TaskAssigned { task, worker: on })
            .unwrap();
        s.apply(&Command::TaskFailed {
            task,
            worker: on,
            attempt: 1,
            error: "cannot read /data/crash.pdf".into(),
            lost_input: None,
            class,
        })
        .unwrap();
        let status = &s.job(JobId(3)).unwrap().status;
        assert_eq!(
            matches!(status, JobStatus::Failed(r) if r.contains("not retried")),
            fails_now,
            "{class}: {status}"
        );
        assert_eq!(
            next_assignments(&s, 10).len(),
            usize::from(!fails_now),
            "{class}"
        );
    }
}

#[test]
fn two_tasks_go_one_to_each_worker_of_unequal_size_whichever_joined_first() {
    for (big, small) in [(1, 2), (2, 1)] {
        let mut s = DriverState::default();
        s.apply(&worker(big, 2.0, 0.0)).unwrap();
        s.apply(&worker(small, 1.0, 0.0)).unwrap();
        s.apply(&submit_job(JobId(1), "two", vec![stage(1, 2, vec![], 0.0)]))
            .unwrap();
        let mut workers: Vec<WorkerId> = next_assignments(&s, 100)
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        workers.sort();
        assert_eq!(
            workers,
            vec![WorkerId(1), WorkerId(2)],
            "the 2-CPU worker is {big}"
        );
    }
}

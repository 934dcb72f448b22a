//! The deployment checked against the code: the CloudFormation template's task definitions
//! against the settings the binary reads, its load balancer against the web server, its queue
//! against the worker's lease, and the image's packages against `make deps`.
//! (cfn-lint and checkov check the template itself; `scripts/lint-deploy.sh`, run by `make test`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn template() -> Value {
    let path = root().join("deploy/cloudformation/infrastructure-fargate.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    let found = &template["Resources"][name];
    assert!(found.is_mapping(), "no resource {name}");
    &found["Properties"]
}

fn container<'a>(template: &'a Value, task: &str) -> &'a Value {
    let containers = resource(template, task)["ContainerDefinitions"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1, "{task}: one container");
    &containers[0]
}

/// The stack as deployed with parameter `overrides` (the rest at their defaults).
struct Stack<'a> {
    template: &'a Value,
    overrides: BTreeMap<&'a str, &'a str>,
}

impl<'a> Stack<'a> {
    fn defaults(template: &'a Value) -> Self {
        Stack { template, overrides: BTreeMap::new() }
    }

    /// A condition of the template, evaluated (`!Equals`, `!Not`, `!Condition`).
    fn condition(&self, value: &Value) -> bool {
        match value {
            Value::String(name) => self.condition(&self.template["Conditions"][name.as_str()]),
            Value::Tagged(t) => {
                let args = t.value.as_sequence();
                match t.tag.to_string().as_str() {
                    "!Equals" => {
                        let args = args.unwrap();
                        render(&args[0], self) == render(&args[1], self)
                    }
                    "!Not" => !self.condition(&args.unwrap()[0]),
                    "!Condition" => self.condition(&t.value),
                    tag => panic!("evaluate {tag} by hand in this test"),
                }
            }
            other => panic!("not a condition: {other:?}"),
        }
    }

    /// A list's items, with `!If [condition, item, other]` items resolved and `AWS::NoValue`
    /// items left out.
    fn items(&self, list: &'a Value) -> Vec<&'a Value> {
        let no_value = |v: &Value| matches!(v, Value::Tagged(t) if t.tag == "!Ref" && t.value == "AWS::NoValue");
        list.as_sequence()
            .map(|items| {
                items
                    .iter()
                    .map(|item| match item {
                        Value::Tagged(t) if t.tag == "!If" => {
                            let branches = t.value.as_sequence().unwrap();
                            if self.condition(&branches[0]) {
                                &branches[1]
                            } else {
                                &branches[2]
                            }
                        }
                        item => item,
                    })
                    .filter(|item| !no_value(item))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A value as the running task would see it, with stand-ins for what AWS fills in: parameters
/// take their defaults, queue references become queue URLs, other references and attributes a
/// name-like placeholder.
fn render(value: &Value, stack: &Stack) -> String {
    let template = stack.template;
    let reference = |name: &str| -> String {
        let parameter = &template["Parameters"][name];
        if parameter.is_mapping() {
            return stack.overrides.get(name).map_or_else(|| scalar(&parameter["Default"]), |v| v.to_string());
        }
        match name {
            "AWS::Region" => "us-east-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            _ if template["Resources"][name]["Type"].as_str() == Some("AWS::SQS::Queue") => {
                format!("https://sqs.us-east-1.amazonaws.com/123456789012/{}", name.to_lowercase())
            }
            _ => name.replace(['.', ':'], "-").to_lowercase(),
        }
    };
    match value {
        Value::Tagged(t) => match (t.tag.to_string().as_str(), &t.value) {
            ("!Ref", Value::String(name)) => reference(name),
            ("!GetAtt", Value::String(name)) => reference(name),
            ("!Sub", Value::String(text)) => {
                let mut out = String::new();
                let mut rest = text.as_str();
                while let Some(start) = rest.find("${") {
                    let end = rest[start..].find('}').unwrap() + start;
                    out.push_str(&rest[..start]);
                    out.push_str(&reference(&rest[start + 2..end]));
                    rest = &rest[end + 1..];
                }
                out + rest
            }
            (tag, _) => panic!("render {tag} by hand in this test"),
        },
        other => scalar(other),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// (environment, secret names) of a task's container.
fn task_env(stack: &Stack, task: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let c = container(stack.template, task);
    let env =
        stack.items(&c["Environment"]).into_iter().map(|e| (scalar(&e["Name"]), render(&e["Value"], stack))).collect();
    let secrets = stack.items(&c["Secrets"]).into_iter().map(|s| scalar(&s["Name"])).collect();
    (env, secrets)
}

/// `anb settings` run with exactly this environment (secrets as stand-ins), in an empty folder
/// so no anb.toml applies: the settings the task would run with, or the binary's complaint.
fn settings_seen_by_the_binary(env: &BTreeMap<String, String>, secrets: &[String]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_anb"));
    command.arg("settings").current_dir(dir.path()).env_clear().envs(env);
    for secret in secrets {
        command.env(secret, "a-secret-from-secrets-manager-0123456789abcdef");
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "the binary refuses the task's settings:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_variable_the_tasks_set_is_a_setting_and_every_required_one_is_set() {
    let template = template();
    let known = anb_core::Settings::env_names();
    let secret_vars: Vec<String> =
        anb_core::Settings::SECRETS.iter().map(|s| format!("ANB_{}", s.to_ascii_uppercase())).collect();
    let with_concurrency = Stack { template: &template, overrides: BTreeMap::from([("WorkerConcurrency", "2")]) };
    let (worker_env, _) = task_env(&with_concurrency, "WorkerTaskDefinition");
    assert_eq!(worker_env.get("ANB_WORKER_CONCURRENCY").map(String::as_str), Some("2"));
    let (default_env, _) = task_env(&Stack::defaults(&template), "WorkerTaskDefinition");
    assert!(!default_env.contains_key("ANB_WORKER_CONCURRENCY"), "unset by default: derived from the vCPUs");
    for (stack, task, required, required_secrets) in [
        (
            Stack::defaults(&template),
            "WebTaskDefinition",
            &["ANB_LISTEN", "ANB_DATABASE_URL", "ANB_STORAGE_URL", "ANB_QUEUE_URL"][..],
            &["ANB_SECRET_KEY", "ANB_DATABASE_PASSWORD"][..],
        ),
        (
            Stack::defaults(&template),
            "WorkerTaskDefinition",
            &["ANB_DATABASE_URL", "ANB_STORAGE_URL", "ANB_QUEUE_URL", "ANB_DLQ_URL"][..],
            &["ANB_DATABASE_PASSWORD"][..],
        ),
        (with_concurrency, "WorkerTaskDefinition", &["ANB_WORKER_CONCURRENCY"][..], &["ANB_DATABASE_PASSWORD"][..]),
    ] {
        let (env, secrets) = task_env(&stack, task);
        for name in env.keys().chain(&secrets).filter(|n| n.starts_with("ANB_")) {
            assert!(known.contains(name), "{task} sets {name}, which the binary does not read");
        }
        for name in required {
            assert!(env.contains_key(*name), "{task} must set {name}");
        }
        for name in required_secrets {
            assert!(secrets.contains(&name.to_string()), "{task} must take {name} from a secret");
        }
        for name in &secret_vars {
            assert!(!env.contains_key(name), "{task} sets the secret {name} in plain text");
        }
        assert_eq!(env.get("AWS_REGION").map(String::as_str), Some("us-east-1"), "{task}: the SDK's region");

        let seen = settings_seen_by_the_binary(&env, &secrets);
        assert!(seen["database_url"].as_str().unwrap().starts_with("postgres://"), "{task}: {seen}");
        assert!(seen["storage_url"].as_str().unwrap().starts_with("s3://"), "{task}: {seen}");
        assert!(seen["queue_url"].as_str().unwrap().starts_with("https://sqs."), "{task}: {seen}");
        assert_eq!(seen["database_password"], "<redacted>", "{task}: the password arrives apart from the URL");
    }
}

#[test]
fn the_web_container_listens_where_the_load_balancer_sends_and_checks() {
    let template = template();
    let (env, secrets) = task_env(&Stack::defaults(&template), "WebTaskDefinition");
    let seen = settings_seen_by_the_binary(&env, &secrets);
    let listen: std::net::SocketAddr = seen["listen"].as_str().unwrap().parse().unwrap();
    assert!(listen.ip().is_unspecified(), "the web server must listen on every interface in a task: {listen}");
    let port = listen.port() as u64;
    let mappings = container(&template, "WebTaskDefinition")["PortMappings"].as_sequence().unwrap();
    assert_eq!(mappings[0]["ContainerPort"].as_u64(), Some(port));
    let target_group = resource(&template, "WebTargetGroup");
    assert_eq!(target_group["Port"].as_u64(), Some(port));
    assert_eq!(target_group["HealthCheckPath"].as_str(), Some(anb_web::HEALTH_PATH));
    let service = resource(&template, "WebService");
    assert_eq!(service["LoadBalancers"][0]["ContainerPort"].as_u64(), Some(port));
    assert_eq!(service["ServiceName"].as_str(), Some("anb-video-web-service"));
    assert_eq!(resource(&template, "WorkerService")["ServiceName"].as_str(), Some("anb-video-worker-service"));
    assert_eq!(resource(&template, "Cluster")["ClusterName"].as_str(), Some("anb-video-cluster"));
    assert_eq!(resource(&template, "WebLogGroup")["LogGroupName"].as_str(), Some("/ecs/anb-video-web"));
    assert_eq!(resource(&template, "WorkerLogGroup")["LogGroupName"].as_str(), Some("/ecs/anb-video-worker"));
}

#[test]
fn the_queue_outlasts_a_lease_extension_and_the_stop_timeout_fits_the_grace_period() {
    let template = template();
    let (env, secrets) = task_env(&Stack::defaults(&template), "WorkerTaskDefinition");
    let seen = settings_seen_by_the_binary(&env, &secrets);
    let lease = Duration::from_secs(seen["visibility_timeout_secs"].as_u64().unwrap());
    let queue = resource(&template, "JobQueue");
    let visibility = Duration::from_secs(queue["VisibilityTimeout"].as_u64().unwrap());
    let extension = anb_worker::lease::extension_interval(lease);
    assert!(
        visibility > extension,
        "queue visibility {visibility:?} must exceed the lease extension interval {extension:?}"
    );
    assert!(visibility >= lease, "queue visibility {visibility:?} shorter than one lease window {lease:?}");
    assert_eq!(
        queue["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(anb_core::queue::MAX_RECEIVES as u64),
        "the dead-letter rule and the worker's last-receive logic agree"
    );

    let grace = seen["shutdown_grace_secs"].as_u64().unwrap();
    let stop_timeout = container(&template, "WorkerTaskDefinition")["StopTimeout"].as_u64().unwrap();
    assert!(stop_timeout >= grace + 10, "stop timeout {stop_timeout} s leaves no time after the {grace} s grace");
    assert!(stop_timeout <= 120, "Fargate allows at most 120 s");
}

#[test]
fn the_worker_scales_on_backlog_per_task_and_the_web_on_cpu() {
    let template = template();
    let web = &resource(&template, "WebCpuScaling")["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(web["PredefinedMetricSpecification"]["PredefinedMetricType"], "ECSServiceAverageCPUUtilization");
    assert_eq!(render(&web["TargetValue"], &Stack::defaults(&template)), "70");
    let worker = &resource(&template, "WorkerBacklogScaling")["TargetTrackingScalingPolicyConfiguration"];
    let metrics = worker["CustomizedMetricSpecification"]["Metrics"].as_sequence().unwrap();
    let returned: Vec<&Value> = metrics.iter().filter(|m| m["ReturnData"].as_bool() == Some(true)).collect();
    assert_eq!(returned.len(), 1);
    let expression = returned[0]["Expression"].as_str().unwrap();
    assert!(expression.contains("visible / tasks"), "{expression}");
    let names: Vec<&str> = metrics.iter().filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str()).collect();
    assert_eq!(names, ["ApproximateNumberOfMessagesVisible", "RunningTaskCount"]);
    assert!(
        matches!(&worker["TargetValue"], Value::Tagged(t) if t.tag == "!Ref" && t.value == "WorkerBacklogPerTaskTarget")
    );
}

#[test]
fn the_image_and_make_deps_install_the_same_package_lists() {
    let read = |path: &str| std::fs::read_to_string(root().join(path)).unwrap();
    let dockerfile = read("deploy/docker/Dockerfile");
    let makefile = read("Makefile");
    for list in ["deploy/packages/build.txt", "deploy/packages/runtime.txt"] {
        assert!(dockerfile.contains(list), "the Dockerfile installs {list}");
        assert!(makefile.contains(list), "make deps installs {list}");
        assert!(Path::new(&root().join(list)).exists());
    }
    assert!(dockerfile.contains("scripts/install-deps.sh"), "one installer for both");
    assert!(!dockerfile.contains("apt-get install"), "no second package list in the Dockerfile");
    let runtime_stage = dockerfile.split("AS runtime").nth(1).expect("a runtime stage");
    assert!(!runtime_stage.contains("build.txt"), "build-only packages stay out of the runtime image");
    assert!(runtime_stage.contains("USER anb"), "the runtime runs as a non-root user");
    for shipped in ["pipeline.toml", "assets"] {
        assert!(runtime_stage.contains(&format!("COPY {shipped}")), "the image ships {shipped}");
    }
}

#[test]
fn the_template_defaults_are_what_the_capacity_report_recommends() {
    let template = template();
    let docs = std::fs::read_to_string(root().join("docs/capacity.md")).unwrap();
    let line = docs.lines().skip_while(|l| !l.contains("recommended: WorkerCpu=")).collect::<Vec<_>>().join(" ");
    for parameter in ["WorkerCpu", "WorkerMemory", "WorkerBacklogPerTaskTarget"] {
        let recommended = line
            .split(&format!("{parameter}="))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .unwrap_or_else(|| panic!("docs/capacity.md names no recommended {parameter}"));
        let default = scalar(&template["Parameters"][parameter]["Default"]);
        assert_eq!(default, recommended, "{parameter}: the template's default and docs/capacity.md disagree");
    }
}

#[test]
fn a_capacity_report_becomes_parameters_the_worker_runs_with() {
    // A report as `make bench` writes it (only the fields the overrides come from).
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("capacity.json");
    let rec = |vcpu: f64, concurrency: u32, backlog: u32, memory_gb: f64| {
        serde_json::json!({"vcpu": vcpu, "concurrency": concurrency, "meets_latency_target": true,
            "backlog_per_task_target": backlog, "fargate_memory_gb": memory_gb})
    };
    let recommendations = [rec(0.5, 1, 2, 1.0), rec(1.0, 1, 6, 2.0), rec(2.0, 2, 13, 4.0)];
    std::fs::write(&report, serde_json::json!({ "recommendations": recommendations }).to_string()).unwrap();
    let parameters = |size: Option<&str>| {
        let mut command = Command::new("python3");
        command.arg(root().join("benches/capacity.py")).arg("--report").arg(&report).arg("--parameters");
        command.args(size);
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    let template = template();
    let default_size = parameters(None);
    assert_eq!(
        default_size,
        format!(
            "WorkerCpu={} WorkerMemory=2048 WorkerConcurrency=1 WorkerBacklogPerTaskTarget=6",
            scalar(&template["Parameters"]["WorkerCpu"]["Default"])
        ),
        "without a size: the template's WorkerCpu"
    );
    let two = parameters(Some("2"));
    assert_eq!(two, "WorkerCpu=2048 WorkerMemory=4096 WorkerConcurrency=2 WorkerBacklogPerTaskTarget=13");

    // Every override is a parameter of the template with an allowed value, and reaches the worker.
    let overrides: BTreeMap<&str, &str> = two.split(' ').map(|kv| kv.split_once('=').unwrap()).collect();
    for (name, value) in &overrides {
        let parameter = &template["Parameters"][*name];
        assert!(parameter.is_mapping(), "{name} is no parameter of the template");
        if let Some(allowed) = parameter["AllowedValues"].as_sequence() {
            assert!(allowed.iter().any(|v| scalar(v) == *value), "{name}={value} is not allowed");
        }
    }
    let stack = Stack { template: &template, overrides };
    let task = resource(&template, "WorkerTaskDefinition");
    assert_eq!((render(&task["Cpu"], &stack), render(&task["Memory"], &stack)), ("2048".into(), "4096".into()));
    let (env, _) = task_env(&stack, "WorkerTaskDefinition");
    assert_eq!(env.get("ANB_WORKER_CONCURRENCY").map(String::as_str), Some("2"));
    let scaling = &resource(&template, "WorkerBacklogScaling")["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(render(&scaling["TargetValue"], &stack), "13");

    // A size the report did not measure is refused, not guessed.
    let out = Command::new("python3")
        .arg(root().join("benches/capacity.py"))
        .args(["--report", report.to_str().unwrap(), "--parameters", "4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recommendation for 4"));
}

# Per-cell metric jobs: the Hessian of every seed's checkpoint, pairwise CKA and l2 distance
# between seeds. Loss and accuracy come from the training job's own final evaluation
# (train.json). Each rule's code inputs are the modules its job imports (lltax.runtime.code_sources), so
# editing one reruns the metric; one process per cell pays start-up and imports once.


rule hessian:
    input:
        checkpoints=per_seed(CHECKPOINT),
        code=sources("hessian"),
    output:
        per_seed("hessian.json"),
    log:
        cell_log("hessian"),
    benchmark:
        cell_benchmark("hessian")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("hessian"),
    params:
        **TORCH_JOB,
        settings=section("hessian"),
        memory_budget_gb=CONFIG["memory_budget_gb"],
    shell:
        "lltax hessian --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device:q} --memory-budget-gb {params.memory_budget_gb:q}"
        " --out {output:q} --threads {threads:q} > {log:q} 2>&1"


# Basin width (and convexity share) of every seed's checkpoint: the landscape as a number.
rule basin:
    input:
        checkpoints=per_seed(CHECKPOINT),
        code=sources("basin"),
    output:
        per_seed("basin.json"),
    log:
        cell_log("basin"),
    benchmark:
        cell_benchmark("basin")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("basin"),
    params:
        **TORCH_JOB,
        settings=section("basin", drop=("enabled",)),
    shell:
        "lltax basin --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device:q} --out {output:q} --threads {threads:q} > {log:q} 2>&1"


# CKA and the l2 distance (no settings of its own, no forward passes) in one job.
rule cka:
    input:
        checkpoints=per_seed(CHECKPOINT),
        code=sources("cka"),
    output:
        cka=f"{RESULTS}/{{cell}}/cka.json",
        distance=f"{RESULTS}/{{cell}}/distance.json",
    log:
        cell_log("cka"),
    benchmark:
        cell_benchmark("cka")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("cka"),
    params:
        **TORCH_JOB,
        settings=section("cka"),
        memory_budget_gb=CONFIG["memory_budget_gb"],
    shell:
        "lltax cka --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device:q} --memory-budget-gb {params.memory_budget_gb:q}"
        " --out {output.cka:q}"
        " --distance-out {output.distance:q} --threads {threads:q} > {log:q} 2>&1"


# A metric of lltax.contract.METRIC_JOBS without a rule of its own (its line's rule is None):
# one job per cell for all its seeds, `lltax <command>` given its config section less what the
# line leaves out. Its runtime request is the cost model's minimum (lltax.runtime.cost knows
# the FLOPs of lltax's own metrics only).
rule seed_metric:
    input:
        checkpoints=per_seed(CHECKPOINT),
        code=lambda wildcards: sources(SEED_METRICS[wildcards.record].command),
    output:
        per_seed("{record}"),
    log:
        f"{RESULTS}/logs/seed_metric/{{record}}/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/seed_metric/{{record}}/{{cell}}.tsv"
    wildcard_constraints:
        record="|".join(re.escape(record) for record in SEED_METRICS) or "(?!)",
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("seed_metric"),
    params:
        **TORCH_JOB,
        command=lambda wildcards: SEED_METRICS[wildcards.record].command,
        settings=lambda wildcards: canonical_json(SEED_METRICS[wildcards.record].passed_settings(CONFIG)),
    shell:
        "lltax {params.command:q} --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device:q} --out {output:q} --threads {threads:q} > {log:q} 2>&1"

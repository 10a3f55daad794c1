# Per-cell metric jobs: the Hessian of every seed's checkpoint, pairwise CKA and l2 distance
# between seeds. Loss and accuracy come from the training job's own final evaluation
# (train.json). Each rule declares its metric's source files as inputs, so editing one reruns
# the metric; one process per cell pays start-up and imports once.


rule hessian:
    input:
        checkpoints=per_seed("model.pt"),
        code=sources("hessian"),
    output:
        per_seed("hessian.json"),
    params:
        settings=section("hessian"),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("hessian"),
        mem_mb=memory("hessian"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/hessian/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/hessian/{{cell}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax hessian --checkpoint {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output:q} --threads {threads} > {log:q} 2>&1"


# CKA and the l2 distance (no settings of its own, no forward passes) in one job.
rule cka:
    input:
        checkpoints=per_seed("model.pt"),
        code=sources("cka"),
    output:
        cka=f"{RESULTS}/{{cell}}/cka.json",
        distance=f"{RESULTS}/{{cell}}/distance.json",
    params:
        settings=section("cka"),
        data_dir=CONFIG["data_dir"],
        device=CONFIG["device"],
    resources:
        gpu=1 if USE_GPU else 0,
        runtime=runtime("cka"),
        mem_mb=memory("cka"),
    threads: THREADS
    log:
        f"{RESULTS}/logs/cka/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cka/{{cell}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax cka --checkpoints {input.checkpoints:q} --settings {params.settings:q}"
        " --data-dir {params.data_dir:q} --device {params.device} --out {output.cka:q}"
        " --distance-out {output.distance:q} --threads {threads} > {log:q} 2>&1"

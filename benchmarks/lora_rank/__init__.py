"""Does a low LoRA rank keep a model's bias? The study of issue 11 on SmolLM2-135M-Instruct, on CPU.

Every method fine-tunes the same model on the same data with the same steps and schedule: PEFT LoRA at
several ranks on all seven projection types, L1RA (``l1ra_core.torch``) at the budget of a rank, and full
fine-tuning as the reference; the learning rate of each method is tuned on a dev fold of the training data
(never on CrowS-Pairs or WinoBias test). Every model is then measured: WinoBias test and CrowS-Pairs by exact
log-likelihood with paired bootstrap intervals, KL divergence of next-token distributions to the full
fine-tune and to the base, forgetting (NLL on held-out STS-B sentences, after the chat-turn token and as
plain text against the base), toxicity of answers to the EvoTox seeds. Rank diagnostics come from
``l1ra_core``'s spectra of the full fine-tune's updates. Since issue 20: learning-rate grids are extended
while their winner sits at an edge (``tuning``), a diverged training run is marked and re-run at the next
rate down (``guard``), intervals over seeds are t intervals (``stats``), and the report checks that the
training loss has flattened.

Commands (from the repository root; one thread per process is fastest on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/lora_rank_bias.py run --profile study      # the grid, resumable
    python benchmarks/lora_rank_bias.py report --profile study                     # tables + plots
    OMP_NUM_THREADS=1 python benchmarks/lora_rank_bias.py run --profile review     # 5 seeds, 150 steps
    python benchmarks/lora_rank_bias.py run --profile smoke --results-dir /tmp/x   # the CI pipeline check

Each run writes one JSON file, atomically, when it has finished; a finished run is never recomputed and a
killed one leaves nothing behind, so ``run`` resumes where it stopped. Runs go in the order that makes a
partial grid most informative (base, full fine-tune, LoRA rank 1 and 32, ...). Large artefacts the later
runs need (the full fine-tune's weight updates, reference next-token distributions) go to ``--cache-dir``,
never to the results.

Modules, one job each: ``config`` (StudyConfig, PROFILES, Run), ``data``, ``model``, ``plan`` (the grid),
``store`` (reading results), ``scheduler`` (``Study``: the lock-based resumable executor), ``runs`` (what each
kind of run computes), ``training``, ``guard`` (divergence, flattened curves), ``tuning`` (learning-rate
grids), ``measures``, ``diagnostics`` (spectra, effective ranks), ``stats`` (intervals over seeds),
``speed``, ``report``, ``plots``, ``cli``. ``python -m benchmarks.lora_rank`` is the same command line.
"""

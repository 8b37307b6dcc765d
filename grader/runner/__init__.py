"""The untrusted side: what runs inside the sandbox, as the student's identity.

`python -m grader.runner` is the zygote: a fresh interpreter that imports torch and the runtime
once, never reads a secret, and forks one disposable session per submission, which forks one
child per group of probes (grader.contract.in_turn) to run them in turn. Everything here may be
seen and tampered with by the submission it runs; it holds no key, decides no point and writes no
file the grade depends on.
"""

"""Test-wide settings: notebooks run with the smoke profile and exercise checks are strict.

nbval kernels inherit this process's environment, so these settings reach the notebooks too.
"""

import os

os.environ.setdefault("COURSE_PROFILE", "smoke")
os.environ.setdefault("COURSE_CHECK_STRICT", "1")
# Smoke runs train tiny models: a second thread gains nothing there, and on a busy 2-core CI
# machine OpenMP threads that wait for each other make a notebook several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Checkpoints and samples written by notebooks under test go to a throw-away folder, so a test run
# never resumes from an earlier one.
if "COURSE_RUNS" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["COURSE_RUNS"] = tempfile.mkdtemp(prefix="course_runs_")
    atexit.register(shutil.rmtree, os.environ["COURSE_RUNS"], True)

"""``python -m course_lib.search``: the worker command line (:func:`objectives.main`)."""

import sys

from course_lib.search.objectives import main

sys.exit(main())

"""What the pipeline makes of the train stages' outputs; it never trains.

* ``comparisons`` - a configuration's baseline and "our control"'s candidates;
* ``claims`` - the ``claims`` stage: each claim of the paper judged;
* ``tables`` - the cells of every table and the one number formatter; ``report`` the stage;
* ``figures`` - the ``figures`` stage; ``timings`` - the README's table of wall times.
"""

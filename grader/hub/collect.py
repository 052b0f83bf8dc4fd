"""nbgrader's collect, made to trust nothing a student can write.

nbgrader's exchange names each submission ``<student>+<lesson>+<timestamp>+<random>`` and
its own collect believes that name: a student who writes such a folder into the inbound
directory by hand can hand in for a classmate (``check_owner`` only logs a warning) or claim
an earlier time than the real one, and may even change a submission after the due date
(the student owns the files). :class:`TrustedCollect`, chosen with
``c.ExchangeFactory.collect = "grader.hub.collect.TrustedCollect"``, therefore:

* takes a submission only if the Unix owner of its folder *and of every file in it* is the
  student it names, and that student is on the course's roster (the gradebook);
* dates it by the latest change the filesystem recorded (the ``ctime`` of every entry, which
  no user can set back), when that is later than the time in its name: an honest submission
  is written within seconds of its timestamp, so only an edited one moves;
* writes the checked time into the collected ``timestamp.txt`` (the student's copy of that
  file is never believed);
* says, for every submission it refuses or re-dates, why.
"""

from __future__ import annotations

import datetime
import glob
import os
import pwd

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect, groupby
from nbgrader.utils import check_mode
from traitlets import Float

#: where the effective time of a collected submission is written (nbgrader reads this file)
TIMESTAMP = "timestamp.txt"


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def tree_facts(path: str) -> tuple[set[str], float]:
    """The owners of ``path`` and everything below it, and the newest ``ctime`` among them."""
    st = os.lstat(path)
    owners, newest = {_owner(st.st_uid)}, st.st_ctime
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(folder, name))
            owners.add(_owner(st.st_uid))
            newest = max(newest, st.st_ctime)
    return owners, newest


class TrustedCollect(ExchangeCollect):
    """``nbgrader collect`` that refuses forged submissions and dates them by the filesystem."""

    slack = Float(120.0, help="seconds a submission's files may be newer than its timestamp "
                              "before it is re-dated to their change time").tag(config=True)

    def _roster(self) -> set[str] | None:
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            names = {student.id for student in gb.students}
        return names or None                     # an empty gradebook roster: take anyone genuine

    def _checked(self, record: dict, roster: set[str] | None) -> dict | None:
        path = os.path.join(self.inbound_path, record["filename"])
        owners, newest = tree_facts(path)
        student = record["username"]
        if owners != {student}:
            self.log.error("refused %s: it claims to be %s's but is owned by %s", record["filename"], student,
                           ", ".join(sorted(owners)))
            return None
        if roster is not None and student not in roster:
            self.log.error("refused %s: %s is not a student of this course", record["filename"], student)
            return None
        changed = datetime.datetime.fromtimestamp(newest, datetime.timezone.utc).replace(tzinfo=None)
        if (changed - record["timestamp"]).total_seconds() > self.slack:
            self.log.warning("re-dated %s: its files were last changed at %s UTC, later than the %s UTC in its name",
                             record["filename"], changed.isoformat(" ", "seconds"),
                             record["timestamp"].isoformat(" ", "seconds"))
            record = dict(record, timestamp=changed, redated=True)
        return record

    def init_src(self):
        # nbgrader's own init_src picks each student's latest submission before anything could be
        # checked, so a forged latest one would hide a genuine one: check first, then pick
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        if not check_mode(self.inbound_path, read=True, execute=True):
            self.fail(f"You don't have read permissions for the directory: {self.inbound_path}")
        student_id = self.coursedir.student_id if self.coursedir.student_id else "*"
        pattern = os.path.join(self.inbound_path, f"{student_id}+{self.coursedir.assignment_id}+*")
        roster = self._roster()
        records = [self._checked(self._path_to_record(f), roster) for f in glob.glob(pattern)]
        self._dated = {r["filename"]: r["timestamp"] for r in records if r}
        usergroups = groupby([r for r in records if r], lambda item: item["username"])
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        self.src_records = []
        for group in usergroups.values():
            ordered = self._sort_by_timestamp(group)
            if self.duedate is not None and self.before_duedate:
                on_time = [r for r in ordered if r["timestamp"] <= self.duedate]
                ordered = on_time or ordered
            self.src_records.append(ordered[0])

    def do_copy(self, src, dest, log=None):
        super().do_copy(src, dest, log)
        when = self._dated[os.path.basename(src)]
        with open(os.path.join(dest, TIMESTAMP), "w") as fh:    # nbgrader's late check reads this file:
            fh.write(when.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))  # the checked time, not the student's copy

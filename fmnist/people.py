"""The people of a class and their sign-ins: a store of their own, in the run store's database.

The tables (fmnist.schema.people, sign_ins) are created and migrated with the run store's, as it
opens; a RunStore reaches this store as `store.people`. fmnist.access decides who may sign in;
this only records it. A person is not their name: the id stays with their runs when `forget-person`
frees the name (retired_at), and the next person under it gets an id of their own.
"""

import time

import sqlalchemy as sa

from fmnist.database import Database
from fmnist.schema import people, sign_ins


class PeopleStore:
    def __init__(self, database: Database):
        """The people in database, whose tables the run store opening it has brought up to date."""
        self.database = database

    @staticmethod
    def _under_name(name_key: str):
        """The rows of everyone who ever signed in under a name: name_key, or (rows written before it) the id it was."""
        return sa.or_(people.c.name_key == name_key, people.c.id == f"class:{name_key}")

    def person(self, name_key: str) -> tuple[str, str, str] | None:
        """(id, name as first written, password hash) of the class member who holds a name now, or None for
        a name nobody holds (never taken, or freed by forget_person)."""
        with self.database.transaction(write=False) as db:
            row = db.execute(sa.select(people.c.id, people.c.name, people.c.password_hash).where(
                self._under_name(name_key), people.c.retired_at.is_(None))).first()
        return (row.id, row.name, row.password_hash) if row else None

    def people_names(self) -> list[str]:
        """The names held now (to refuse a new name that looks like one of them)."""
        with self.database.transaction(write=False) as db:
            return list(db.execute(sa.select(people.c.name).where(people.c.retired_at.is_(None))).scalars())

    def add_person(self, name_key: str, name: str, password_hash: str) -> str | None:
        """The first sign-in under a name: the new person's id, or None when another sign-in took the name
        meanwhile. A name freed before gets a new id (class#2:ada, which no name's own id can be): the runs of the
        person who held it stay theirs."""
        with self.database.transaction() as db:
            rows = db.execute(sa.select(people.c.id, people.c.retired_at).where(self._under_name(name_key))).fetchall()
            if any(row.retired_at is None for row in rows):
                return None
            person_id = f"class#{len(rows) + 1}:{name_key}" if rows else f"class:{name_key}"
            db.execute(people.insert().values(id=person_id, name=name, password_hash=password_hash, created_at=time.time(),
                                              name_key=name_key))
        return person_id

    def set_password_hash(self, person_id: str, password_hash: str) -> None:
        """A password's hash made again with today's scrypt cost, at a sign-in that had the password."""
        with self.database.transaction() as db:
            db.execute(people.update().where(people.c.id == person_id).values(password_hash=password_hash))

    def forget_person(self, name_key: str) -> bool:
        """Free a name (a forgotten password): its person is retired with their runs, signed out everywhere,
        and the next sign-in under the name is a new person, who does not own them (a teacher still may manage them)."""
        with self.database.transaction() as db:
            row = db.execute(sa.select(people.c.id).where(self._under_name(name_key), people.c.retired_at.is_(None))).first()
            if row is None:
                return False
            db.execute(sign_ins.delete().where(sign_ins.c.person_id == row.id))
            db.execute(people.update().where(people.c.id == row.id).values(retired_at=time.time(), password_hash="retired"))
            return True

    def add_sign_in(self, token: str, person_id: str, name: str, admin: bool) -> None:
        with self.database.transaction() as db:
            db.execute(sign_ins.insert().values(token=token, person_id=person_id, name=name, admin=int(admin), created_at=time.time()))

    def signed_in(self, token: str) -> tuple[str, str, bool] | None:
        """(person id, name, admin) of a live sign-in, or None once its person signed out."""
        with self.database.transaction(write=False) as db:
            row = db.execute(sa.select(sign_ins.c.person_id, sign_ins.c.name, sign_ins.c.admin).where(sign_ins.c.token == token)).first()
        return (row.person_id, row.name, bool(row.admin)) if row else None

    def sign_ins(self) -> list[tuple[str, str, bool, float]]:
        """Every live sign-in (one a tab that signed in): (person id, name, admin, when it signed in), earliest first."""
        with self.database.transaction(write=False) as db:
            rows = db.execute(sa.select(sign_ins.c.person_id, sign_ins.c.name, sign_ins.c.admin, sign_ins.c.created_at)
                              .order_by(sign_ins.c.created_at)).fetchall()
        return [(row.person_id, row.name, bool(row.admin), row.created_at) for row in rows]

    def sign_out(self, person_id: str) -> None:
        """Ends all of the person's sign-ins: a tab left open elsewhere can no longer act."""
        with self.database.transaction() as db:
            db.execute(sign_ins.delete().where(sign_ins.c.person_id == person_id))

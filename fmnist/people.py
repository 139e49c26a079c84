"""The people of a class and their sign-ins: a store of their own, in the run store's database.

The tables (fmnist.schema.people, sign_ins) are created and migrated with the run store's, as it
opens; a RunStore reaches this store as `store.people`. fmnist.access decides who may sign in;
this only records it.
"""

import time

import sqlalchemy as sa

from fmnist.database import Database
from fmnist.schema import people, sign_ins


class PeopleStore:
    def __init__(self, database: Database):
        """The people in database, whose tables the run store opening it has brought up to date."""
        self.database = database

    def person(self, person_id: str) -> tuple[str, str] | None:
        """(name as first written, password hash) of a class member, or None for a name nobody has taken."""
        with self.database.transaction(write=False) as db:
            row = db.execute(sa.select(people.c.name, people.c.password_hash).where(people.c.id == person_id)).first()
        return (row.name, row.password_hash) if row else None

    def add_person(self, person_id: str, name: str, password_hash: str) -> None:
        """The first sign-in under a name; a second one racing it loses (the name is taken)."""
        with self.database.transaction() as db:
            db.execute(people.insert().values(id=person_id, name=name, password_hash=password_hash, created_at=time.time()))

    def forget_person(self, person_id: str) -> bool:
        """Free a name (a forgotten password): the next sign-in under it sets a new one. Their runs stay theirs."""
        with self.database.transaction() as db:
            db.execute(sign_ins.delete().where(sign_ins.c.person_id == person_id))
            return db.execute(people.delete().where(people.c.id == person_id)).rowcount > 0

    def add_sign_in(self, token: str, person_id: str, name: str, admin: bool) -> None:
        with self.database.transaction() as db:
            db.execute(sign_ins.insert().values(token=token, person_id=person_id, name=name, admin=int(admin), created_at=time.time()))

    def signed_in(self, token: str) -> tuple[str, str, bool] | None:
        """(person id, name, admin) of a live sign-in, or None once its person signed out."""
        with self.database.transaction(write=False) as db:
            row = db.execute(sa.select(sign_ins.c.person_id, sign_ins.c.name, sign_ins.c.admin).where(sign_ins.c.token == token)).first()
        return (row.person_id, row.name, bool(row.admin)) if row else None

    def sign_out(self, person_id: str) -> None:
        """Ends all of the person's sign-ins: a tab left open elsewhere can no longer act."""
        with self.database.transaction() as db:
            db.execute(sign_ins.delete().where(sign_ins.c.person_id == person_id))

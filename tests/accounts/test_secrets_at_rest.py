"""What must never be kept: no plaintext password (nor raw token, nor recovery code) in any table or log line; and
the schema the migrations build is the one the models describe."""

from __future__ import annotations

import logging

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from plumbing.migrations import version_table
from portal.accounts.v1 import accounts_pb2 as pb
from services.accounts.models import AccountRecord, Base
from tests.accounts.conftest import STAFF_CALL, add_students, create_account, dump_tables

PASSWORDS = ["Tr4vel-Gecko-create", "Batch-Row-Pass7", "Upd4ted-Passphrase", "Redeem3d-Secret", "Wrong-Guess-99"]


async def test_no_plaintext_secret_reaches_the_database_or_the_logs(accounts, database, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await add_students(accounts, "S1")
    await create_account(accounts, "jsmith01", PASSWORDS[0], request_id="create-1")
    await accounts.BatchApplyAccountRows(pb.BatchApplyAccountRowsRequest(rows=[pb.AccountRow(
        row_number=2, username="rowparent1", first_name="Row", last_name="Parent", email="row@example.org",
        password=PASSWORDS[1], student_ids=["S1"])], request_id="batch-1"), metadata=STAFF_CALL)
    from google.protobuf import field_mask_pb2

    await accounts.UpdateAccount(pb.UpdateAccountRequest(
        account=pb.Account(username="jsmith01"), password=PASSWORDS[2],
        update_mask=field_mask_pb2.FieldMask(paths=["password"]), request_id="update-1"), metadata=STAFF_CALL)
    issued = await accounts.IssueSetPasswordToken(pb.IssueSetPasswordTokenRequest(
        username="rowparent1", purpose=pb.TOKEN_PURPOSE_RESET, request_id="issue-1"), metadata=STAFF_CALL)
    await accounts.RedeemSetPasswordToken(pb.RedeemSetPasswordTokenRequest(
        token=issued.token, new_password=PASSWORDS[3], request_id="redeem-1"), metadata=STAFF_CALL)
    await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=PASSWORDS[4]))
    await accounts.Authenticate(pb.AuthenticateRequest(username="jsmith01", password=PASSWORDS[2]))
    enrolment = await accounts.EnrollTwoFactor(pb.EnrollTwoFactorRequest(username="jsmith01", request_id="tfa-1"),
                                               metadata=STAFF_CALL)

    stored = dump_tables(database)
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "AccountsService/Authenticate ok" in caplog.text, "the calls were not logged at all"
    for secret in [*PASSWORDS, issued.token, *enrolment.recovery_codes]:
        assert secret not in stored, f"{secret!r} is stored"
        assert secret not in logged, f"{secret!r} is logged"
    with database.read() as session:
        hashes = list(session.scalars(select(AccountRecord.password_hash).where(AccountRecord.password_hash.is_not(
            None))))
    assert len(hashes) == 2 and all(h.startswith("$argon2id$") for h in hashes)


def test_production_hashing_uses_owasp_parameters() -> None:
    from services.accounts.hashing import OWASP
    from services.accounts.service import AccountsOptions

    assert AccountsOptions().hash_params == OWASP
    assert (OWASP.memory_cost, OWASP.time_cost, OWASP.parallelism) == (19 * 1024, 2, 1)


async def test_the_migrations_build_what_the_models_describe(accounts, database) -> None:
    def differences(session: Session) -> list[object]:
        context = MigrationContext.configure(session.connection(),
                                             opts={"version_table": version_table("accounts"),
                                                   "compare_type": True})
        return [d for d in compare_metadata(context, Base.metadata)
                if not (isinstance(d, tuple) and d[0] == "remove_table")]

    with database.read() as session:
        assert differences(session) == []

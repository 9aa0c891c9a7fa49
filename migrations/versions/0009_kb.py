"""Knowledge base: articles, versions, full-text index, search log, deflections

Written by hand: the full-text index differs per back end.

- SQLite: an FTS5 table ``kb_articles_fts`` over the article's normalised title, tags
  and plain-text body (external content: it reads the text from ``kb_articles``),
  tokenizer ``unicode61 remove_diacritics 2``, kept in sync by three triggers, so
  every way a row changes (service, CLI, test clean-up) updates the index in the same
  transaction. A later batch migration that rebuilds ``kb_articles`` drops the
  triggers with the table: re-create them there.
- PostgreSQL: ``kb_articles.search_config`` is a ``regconfig`` (the text search
  configuration for the article's language), so ``to_tsvector(search_config, ...)``
  is immutable and a GIN index on the weighted document expression is possible. The
  query in ``servicedesk/kb/search.py`` spells the same expression
  (``tests/test_kb_search.py`` checks that the plan uses the index).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 20:50:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# Frozen here; servicedesk.kb.search.PG_DOCUMENT must stay the same expression.
PG_DOCUMENT = (
    "setweight(to_tsvector(search_config, coalesce(search_title, '')), 'A') || "
    "setweight(to_tsvector(search_config, coalesce(tags, '')), 'B') || "
    "setweight(to_tsvector(search_config, coalesce(search_body, '')), 'C')"
)

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE kb_articles_fts USING fts5("
    "search_title, tags, search_body, content='kb_articles', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER kb_articles_fts_insert AFTER INSERT ON kb_articles BEGIN "
    "INSERT INTO kb_articles_fts(rowid, search_title, tags, search_body) "
    "VALUES (new.id, new.search_title, new.tags, new.search_body); END",
    "CREATE TRIGGER kb_articles_fts_delete AFTER DELETE ON kb_articles BEGIN "
    "INSERT INTO kb_articles_fts(kb_articles_fts, rowid, search_title, tags, search_body) "
    "VALUES ('delete', old.id, old.search_title, old.tags, old.search_body); END",
    "CREATE TRIGGER kb_articles_fts_update AFTER UPDATE OF search_title, tags, search_body "
    "ON kb_articles BEGIN "
    "INSERT INTO kb_articles_fts(kb_articles_fts, rowid, search_title, tags, search_body) "
    "VALUES ('delete', old.id, old.search_title, old.tags, old.search_body); "
    "INSERT INTO kb_articles_fts(rowid, search_title, tags, search_body) "
    "VALUES (new.id, new.search_title, new.tags, new.search_body); END",
]


def upgrade():
    dialect = op.get_bind().dialect.name
    search_config = (postgresql.REGCONFIG() if dialect == 'postgresql' else sa.String(length=32))
    op.create_table('kb_articles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('tags', sa.String(length=1000), nullable=False),
    sa.Column('audience', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('search_config', search_config, nullable=False),
    sa.Column('search_title', sa.Text(), nullable=False),
    sa.Column('search_body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.CheckConstraint("audience IN ('employees', 'agents')", name=op.f('ck_kb_articles_audience')),
    sa.CheckConstraint("state IN ('draft', 'review', 'published', 'archived')", name=op.f('ck_kb_articles_state')),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_kb_articles_category_id_categories')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_kb_articles_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_articles'))
    )
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_articles_category_id'), ['category_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_articles_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kb_articles_service_id'), ['service_id'], unique=False)
        batch_op.create_index('ix_kb_articles_visible', ['state', 'audience', 'locale'], unique=False)
        batch_op.create_index('ix_kb_articles_updated', ['updated_at', 'id'], unique=False)

    op.create_table('kb_article_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('tags', sa.String(length=1000), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=True),
    sa.Column('service_id', sa.Integer(), nullable=True),
    sa.Column('audience', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_kb_article_versions_actor_id_users')),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], name=op.f('fk_kb_article_versions_article_id_kb_articles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_article_versions')),
    sa.UniqueConstraint('article_id', 'number', name='uq_kb_article_versions_number')
    )

    op.create_table('kb_ticket_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('linked_by_id', sa.Integer(), nullable=True),
    sa.Column('linked_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], name=op.f('fk_kb_ticket_links_article_id_kb_articles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['linked_by_id'], ['users.id'], name=op.f('fk_kb_ticket_links_linked_by_id_users')),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_kb_ticket_links_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_ticket_links')),
    sa.UniqueConstraint('article_id', 'ticket_id', name='uq_kb_ticket_links_pair')
    )
    with op.batch_alter_table('kb_ticket_links', schema=None) as batch_op:
        batch_op.create_index('ix_kb_ticket_links_ticket', ['ticket_id'], unique=False)

    op.create_table('kb_searches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('session', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('query', sa.String(length=200), nullable=False),
    sa.Column('query_key', sa.String(length=200), nullable=False),
    sa.Column('locale', sa.String(length=16), nullable=True),
    sa.Column('result_count', sa.Integer(), nullable=False),
    sa.Column('clicked_article_id', sa.Integer(), nullable=True),
    sa.Column('clicked_at', sa.DateTime(), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['clicked_article_id'], ['kb_articles.id'], name=op.f('fk_kb_searches_clicked_article_id_kb_articles'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_kb_searches_ticket_id_tickets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_kb_searches_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_searches')),
    sa.UniqueConstraint('session', name=op.f('uq_kb_searches_session'))
    )
    with op.batch_alter_table('kb_searches', schema=None) as batch_op:
        batch_op.create_index('ix_kb_searches_at', ['at'], unique=False)
        batch_op.create_index('ix_kb_searches_user', ['user_id', 'at'], unique=False)
        batch_op.create_index('ix_kb_searches_query', ['query_key'], unique=False)

    op.create_table('kb_views',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('search_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], name=op.f('fk_kb_views_article_id_kb_articles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['search_id'], ['kb_searches.id'], name=op.f('fk_kb_views_search_id_kb_searches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_kb_views_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_views'))
    )
    with op.batch_alter_table('kb_views', schema=None) as batch_op:
        batch_op.create_index('ix_kb_views_article', ['article_id', 'at'], unique=False)
        batch_op.create_index('ix_kb_views_at', ['at'], unique=False)

    op.create_table('kb_deflections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('search_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('query', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['kb_articles.id'], name=op.f('fk_kb_deflections_article_id_kb_articles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['search_id'], ['kb_searches.id'], name=op.f('fk_kb_deflections_search_id_kb_searches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_kb_deflections_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_deflections')),
    sa.UniqueConstraint('search_id', name=op.f('uq_kb_deflections_search_id'))
    )
    with op.batch_alter_table('kb_deflections', schema=None) as batch_op:
        batch_op.create_index('ix_kb_deflections_at', ['at'], unique=False)
        batch_op.create_index('ix_kb_deflections_article', ['article_id'], unique=False)

    if dialect == 'sqlite':
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute(f"CREATE INDEX ix_kb_articles_fts ON kb_articles USING gin (({PG_DOCUMENT}))")


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == 'sqlite':
        for trigger in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER IF EXISTS kb_articles_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS kb_articles_fts")
    elif dialect == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_kb_articles_fts")
    op.drop_table('kb_deflections')
    op.drop_table('kb_views')
    op.drop_table('kb_searches')
    op.drop_table('kb_ticket_links')
    op.drop_table('kb_article_versions')
    op.drop_table('kb_articles')

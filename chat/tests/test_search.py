"""chat.search: full-text search over the messages a user may read, on SQLite (FTS5, the
default) and on PostgreSQL, with highlights, and its page and API."""

import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from chat import membership, protocol, search, services
from chat.models import Room
from chat.services import ChatError
from chat.tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def secret(alice, bob):
    room, _ = membership.create_private_room(alice, "Secret")
    membership.invite(alice, room, "bob")
    membership.accept(bob, room)
    return room


def texts(result) -> list[str]:
    return [hit["text"] for hit in result["results"]]


def test_finds_every_word_also_as_a_prefix_newest_first(room, alice):
    services.post_message(alice, room, "We deployed the release on Friday")
    services.post_message(alice, room, "deploy again next week")
    services.post_message(alice, room, "nothing to see")
    assert texts(search.search_messages(alice, "deploy")) == [
        "deploy again next week",
        "We deployed the release on Friday",
    ]
    assert texts(search.search_messages(alice, "DEPLOY fri")) == [
        "We deployed the release on Friday"
    ]
    assert texts(search.search_messages(alice, "deploy tuesday")) == []


def test_only_rooms_the_user_may_read(room, secret, alice, bob):
    carol = make_user("carol")
    services.post_message(alice, secret, "launch code is swordfish")
    services.post_message(alice, room, "swordfish is a fish")
    assert texts(search.search_messages(bob, "swordfish")) == [
        "swordfish is a fish",
        "launch code is swordfish",
    ]
    assert texts(search.search_messages(carol, "swordfish")) == ["swordfish is a fish"]
    assert texts(search.search_messages(AnonymousUser(), "swordfish")) == ["swordfish is a fish"]
    with pytest.raises(ChatError) as error:
        search.search_messages(carol, "swordfish", room=secret)
    assert error.value.code == protocol.NOT_MEMBER


def test_one_room_deleted_and_edited_messages(room, alice):
    other = Room.objects.create(slug="other")
    services.post_message(alice, other, "apples elsewhere")
    gone = services.post_message(alice, room, "apples I regret")
    changed = services.post_message(alice, room, "pears for now")
    services.delete_message(alice, gone.frame["id"], room)
    services.edit_message(alice, room, changed.frame["id"], "apples after all")
    assert texts(search.search_messages(alice, "apples", room=room)) == ["apples after all"]
    assert texts(search.search_messages(alice, "pears")) == []


def test_highlights_mark_each_matching_word(room, alice):
    services.post_message(alice, room, "Deploy, deployed; redeploy? DEPLOYMENT")
    [hit] = search.search_messages(alice, "deploy")["results"]
    assert [hit["text"][s:e] for s, e in hit["highlights"]] == [
        "Deploy",
        "deployed",
        "DEPLOYMENT",
    ]
    segments = search.marked_segments(hit["text"], hit["highlights"])
    assert "".join(part for part, _ in segments) == hit["text"]


def test_a_result_shows_the_text_as_the_page_does_without_markdown_marks(room, alice):
    services.post_message(
        alice,
        room,
        "> **Deploy** on `friday`, *not* _monday_\n```\nmake deploy **now**\n```\nsee https://x.example/a_b_c",
    )
    [hit] = search.search_messages(alice, "deploy")["results"]
    assert hit["text"] == (
        "Deploy on friday, not monday\nmake deploy **now**\nsee https://x.example/a_b_c"
    )
    assert [hit["text"][s:e] for s, e in hit["highlights"]] == ["Deploy", "deploy"]


def test_a_long_message_is_cut_around_its_first_match(room, alice):
    text = "x " * 300 + "needle here " + "y " * 300
    services.post_message(alice, room, text)
    [hit] = search.search_messages(alice, "needle")["results"]
    assert hit["text"].startswith("…") and hit["text"].endswith("…")
    assert len(hit["text"]) <= search.SNIPPET_LENGTH + 2
    [(start, end)] = hit["highlights"]
    assert hit["text"][start:end] == "needle"


def test_pages_of_results(room, alice):
    for index in range(search.SEARCH_PAGE_SIZE + 5):
        services.post_message(alice, room, f"page test {index}")
    first = search.search_messages(alice, "page test")
    assert first["has_more"] and len(first["results"]) == search.SEARCH_PAGE_SIZE
    rest = search.search_messages(alice, "page", before=first["results"][-1]["id"])
    assert not rest["has_more"] and len(rest["results"]) == 5
    assert texts(rest)[-1] == "page test 0"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", protocol.EMPTY),
        ("  ?! ", protocol.EMPTY),
        ("a" * 201, protocol.TOO_LONG),
        (5, "invalid"),
    ],
)
def test_a_search_without_words_is_refused(alice, text, code):
    with pytest.raises(ChatError) as error:
        search.search_messages(alice, text)
    assert error.value.code == code


def test_quotes_and_operators_in_a_search_are_just_words(room, alice):
    services.post_message(alice, room, 'he said "NEAR" OR not')
    assert len(search.search_messages(alice, '"near" OR * ( ^')["results"]) == 1


def test_search_page_marks_matches_and_links_to_the_message(room, secret, alice):
    carol = make_user("carol")
    services.post_message(alice, room, "the <b>quarterly</b> report")
    hidden = services.post_message(alice, secret, "quarterly secrets")
    client = Client()
    client.force_login(carol)
    page = client.get("/search/", {"q": "quarterly"}).content.decode()
    assert "<mark>quarterly</mark>" in page
    assert "&lt;b&gt;" in page  # the message's own markup stays text
    assert "secrets" not in page and f"#message-{hidden.frame['id']}" not in page
    assert "/rooms/general/#message-" in page


def test_search_api_answers_json_and_refuses_rooms_it_may_not_read(room, secret, alice):
    carol = make_user("carol")
    services.post_message(alice, secret, "budget")
    client = Client()
    client.force_login(carol)
    assert client.get("/api/chat/search/", {"q": "budget", "room": secret.slug}).status_code == 404
    assert client.get("/api/chat/search/", {"q": "budget"}).json()["results"] == []
    assert client.get("/api/chat/search/", {"q": ""}).status_code == 400
    client.force_login(alice)
    hits = client.get("/api/chat/search/", {"q": "budget", "room": secret.slug}).json()
    assert [hit["text"] for hit in hits["results"]] == ["budget"]


SEARCH_ON_SERVER = (
    "import json\n"
    "from django.contrib.auth import get_user_model\n"
    "from chat import membership, search, services\n"
    "from chat.models import Room\n"
    "User = get_user_model()\n"
    "owner = User.objects.create_user('pg_owner_{tag}')\n"
    "outsider = User.objects.create_user('pg_out_{tag}')\n"
    "public = Room.objects.create(slug='pg-{tag}')\n"
    "secret, _ = membership.create_private_room(owner, 'PG secret')\n"
    "services.post_message(owner, public, 'We deployed on Friday {tag}')\n"
    "services.post_message(owner, secret, 'deploy the secret {tag}')\n"
    "gone = services.post_message(owner, public, 'deploy gone {tag}')\n"
    "services.delete_message(owner, gone.frame['id'], public)\n"
    "def run(user, text):\n"
    "    return [(h['text'], h['highlights']) for h in search.search_messages(user, text)['results']]\n"
    "from django.db import connection\n"
    "with connection.cursor() as cursor:\n"
    '    cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = '
    "'chat_message_text_search'\")\n"
    "    index = cursor.fetchone()[0]\n"
    "print(json.dumps([run(owner, 'deplo {tag}'), run(outsider, 'deplo {tag}'),"
    " run(owner, 'friday deploy {tag}'), index]))\n"
)


def test_search_on_postgresql_behaves_the_same(live_server_factory, postgres_server):
    server = live_server_factory(database_url=postgres_server)
    owner, outsider, both, index = json.loads(server.shell(SEARCH_ON_SERVER.format(tag="t1")))
    assert "USING gin (to_tsvector('simple'::regconfig, text))" in index
    assert [text for text, _ in owner] == ["deploy the secret t1", "We deployed on Friday t1"]
    assert owner[1][1] == [[3, 11], [22, 24]]  # "deployed", and "t1" (a word of the search)
    assert [text for text, _ in outsider] == ["We deployed on Friday t1"]
    assert [text for text, _ in both] == ["We deployed on Friday t1"]

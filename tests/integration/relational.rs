//! Relational operations through the DataFrame API and SQL.

use std::sync::Arc;

use regatta::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use regatta::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use regatta::prelude::*;

use crate::concat;

fn people(session: &Session) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("age", DataType::Int64, false),
    ]));
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            Arc::new(StringArray::from(vec![
                "oslo", "rome", "oslo", "lima", "rome",
            ])),
            Arc::new(Int64Array::from(vec![30, 40, 50, 20, 60])),
        ],
    )
    .unwrap();
    session.from_batches(vec![b]).unwrap()
}

fn cities(session: &Session) -> DataFrame {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
    ]));
    let b = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["oslo", "rome", "kyiv"])),
            Arc::new(StringArray::from(vec!["no", "it", "ua"])),
        ],
    )
    .unwrap();
    session.from_batches(vec![b]).unwrap()
}

fn ints(b: &RecordBatch, name: &str) -> Vec<i64> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn select_filter_sort_limit_with_column() {
    let s = Session::local();
    let b = people(&s)
        .with_column("older", col("age") + lit(1i64))
        .unwrap()
        .filter(col("age").gt(lit(25i64)))
        .unwrap()
        .sort(vec![col("age").sort(false, false)])
        .unwrap()
        .limit(2)
        .unwrap()
        .select(vec![col("id"), col("older")])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    assert_eq!(ints(&b, "id"), vec![5, 3]);
    assert_eq!(ints(&b, "older"), vec![61, 51]);
}

#[tokio::test(flavor = "multi_thread")]
async fn group_by_distinct_union_count() {
    let s = Session::local();
    let b = people(&s)
        .aggregate(
            vec![col("city")],
            vec![sum(col("age")).alias("total"), count(col("id")).alias("n")],
        )
        .unwrap()
        .sort(vec![col("city").sort(true, false)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    assert_eq!(ints(&b, "total"), vec![20, 80, 100]);
    assert_eq!(ints(&b, "n"), vec![1, 2, 2]);
    assert_eq!(
        people(&s)
            .select_columns(&["city"])
            .unwrap()
            .distinct()
            .unwrap()
            .count()
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        people(&s).union(people(&s)).unwrap().count().await.unwrap(),
        10
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_join_kind() {
    let s = Session::local();
    let cases = [
        (JoinType::Inner, 4),
        (JoinType::Left, 5),
        (JoinType::Right, 5),
        (JoinType::Full, 6),
        (JoinType::LeftSemi, 4),
        (JoinType::LeftAnti, 1),
        (JoinType::RightSemi, 2),
        (JoinType::RightAnti, 1),
    ];
    for (how, want) in cases {
        let n = people(&s)
            .join(cities(&s), how, &["city"], &["name"])
            .unwrap()
            .count()
            .await
            .unwrap();
        assert_eq!(n, want, "{how:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn explode_lists() {
    let s = Session::local();
    let b = s
        .sql(
            "SELECT 1 AS k, [10, 20, 30] AS xs UNION ALL SELECT 2 AS k, array_remove([1], 1) AS xs",
        )
        .await
        .unwrap()
        .explode("xs")
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    assert_eq!(b.num_rows(), 3);
    let mut xs = ints(&b, "xs");
    xs.sort();
    assert_eq!(xs, vec![10, 20, 30]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_over_registered_tables_and_files() {
    let (_d, dir) = regatta_tests::temp_dir();
    let s = Session::local();
    let csv = dir.join("people.csv");
    std::fs::write(&csv, "id,city\n1,oslo\n2,rome\n3,oslo\n").unwrap();
    s.register("people", &csv.to_string_lossy(), None)
        .await
        .unwrap();
    s.register_dataframe("cities", cities(&s)).unwrap();
    let b = s
        .sql("SELECT c.country, count(*) AS n FROM people p JOIN cities c ON p.city = c.name GROUP BY c.country ORDER BY n DESC")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let b = concat(&b);
    assert_eq!(b.column(0).as_string::<i32>().value(0), "no");
    assert_eq!(ints(&b, "n"), vec![2, 1]);
    // Files can be named directly in FROM.
    let q = format!("SELECT count(*) AS n FROM '{}'", csv.display());
    let b = s.sql(&q).await.unwrap().collect().await.unwrap();
    assert_eq!(ints(&b[0], "n"), vec![3]);
    assert!(b[0].column(0).is_valid(0));
}

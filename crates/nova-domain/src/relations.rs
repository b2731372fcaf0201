//! Relations between entities, derived from each kind's spec fields as Backstage does.

use crate::entity_ref::EntityRef;

/// The relation types Backstage defines for its built-in kinds; each has a reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationType {
    OwnedBy,
    OwnerOf,
    PartOf,
    HasPart,
    MemberOf,
    HasMember,
    ParentOf,
    ChildOf,
    DependsOn,
    DependencyOf,
    ProvidesApi,
    ApiProvidedBy,
    ConsumesApi,
    ApiConsumedBy,
}

impl RelationType {
    /// The name used in the API (`ownedBy`, `hasPart`, ...).
    pub fn as_str(self) -> &'static str {
        use RelationType::*;
        match self {
            OwnedBy => "ownedBy",
            OwnerOf => "ownerOf",
            PartOf => "partOf",
            HasPart => "hasPart",
            MemberOf => "memberOf",
            HasMember => "hasMember",
            ParentOf => "parentOf",
            ChildOf => "childOf",
            DependsOn => "dependsOn",
            DependencyOf => "dependencyOf",
            ProvidesApi => "providesApi",
            ApiProvidedBy => "apiProvidedBy",
            ConsumesApi => "consumesApi",
            ApiConsumedBy => "apiConsumedBy",
        }
    }

    /// The relation seen from the other end.
    pub fn reverse(self) -> Self {
        use RelationType::*;
        match self {
            OwnedBy => OwnerOf,
            OwnerOf => OwnedBy,
            PartOf => HasPart,
            HasPart => PartOf,
            MemberOf => HasMember,
            HasMember => MemberOf,
            ParentOf => ChildOf,
            ChildOf => ParentOf,
            DependsOn => DependencyOf,
            DependencyOf => DependsOn,
            ProvidesApi => ApiProvidedBy,
            ApiProvidedBy => ProvidesApi,
            ConsumesApi => ApiConsumedBy,
            ApiConsumedBy => ConsumesApi,
        }
    }
}

/// One relation from an entity to a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub kind: RelationType,
    pub target: EntityRef,
}

/// Which spec field of which kind produces which relation, and the target's default kind.
pub(crate) struct RelationField {
    pub field: &'static str,
    pub many: bool,
    pub relation: RelationType,
    pub default_kind: Option<&'static str>,
}

const fn one(field: &'static str, relation: RelationType, default_kind: Option<&'static str>) -> RelationField {
    RelationField { field, many: false, relation, default_kind }
}

const fn many(field: &'static str, relation: RelationType, default_kind: Option<&'static str>) -> RelationField {
    RelationField { field, many: true, relation, default_kind }
}

use RelationType as R;

pub(crate) const COMPONENT: &[RelationField] = &[
    one("owner", R::OwnedBy, Some("Group")),
    one("system", R::PartOf, Some("System")),
    one("subcomponentOf", R::PartOf, Some("Component")),
    many("providesApis", R::ProvidesApi, Some("API")),
    many("consumesApis", R::ConsumesApi, Some("API")),
    many("dependsOn", R::DependsOn, None),
    many("dependencyOf", R::DependencyOf, None),
];
pub(crate) const API: &[RelationField] = &[one("owner", R::OwnedBy, Some("Group")), one("system", R::PartOf, Some("System"))];
pub(crate) const RESOURCE: &[RelationField] = &[
    one("owner", R::OwnedBy, Some("Group")),
    one("system", R::PartOf, Some("System")),
    many("dependsOn", R::DependsOn, None),
    many("dependencyOf", R::DependencyOf, None),
];
pub(crate) const SYSTEM: &[RelationField] = &[one("owner", R::OwnedBy, Some("Group")), one("domain", R::PartOf, Some("Domain"))];
pub(crate) const DOMAIN: &[RelationField] =
    &[one("owner", R::OwnedBy, Some("Group")), one("subdomainOf", R::PartOf, Some("Domain"))];
pub(crate) const GROUP: &[RelationField] = &[
    one("parent", R::ChildOf, Some("Group")),
    many("children", R::ParentOf, Some("Group")),
    many("members", R::HasMember, Some("User")),
];
pub(crate) const USER: &[RelationField] = &[many("memberOf", R::MemberOf, Some("Group"))];
